//! A real nginx terminates mTLS and forwards `$ssl_client_escaped_cert` to the gateway's plain
//! listener, as a platform team would deploy it.

use crate::support::process::start_nginx;
use crate::support::*;

#[tokio::test]
async fn nginx_terminating_mtls_forwards_the_certificate_to_the_plain_listener() {
    let mut setup = Setup::new();
    setup.clients.push_str("[front_proxy]\nheader = \"x-ssl-client-cert\"\ntrusted_peers = [\"127.0.0.1/32\"]\nplain_listen = \"127.0.0.1:0\"\n");
    let h = setup.start().await;
    let plain = h.running.as_ref().unwrap().plain_addr.unwrap();
    let dir = &h.setup.dir.0;
    let conf = |port: u16| {
        format!(
            r#"worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream gateway {{ server {plain}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {dir}/server.pem;
    ssl_certificate_key {dir}/server-key.pem;
    ssl_client_certificate {dir}/ca1.pem;
    ssl_verify_client optional;
    ssl_verify_depth 3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{
      proxy_pass http://gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
    }}
  }}
}}
"#,
            dir = dir.display()
        )
    };
    let Some((_nginx, port)) = start_nginx(dir, conf) else {
        return;
    };
    let url = format!("https://localhost:{port}/token");
    // A good client gets a token through nginx.
    let answer = client_for(Some("client"), false)
        .post_form(&url, &form(PKI_CLIENT))
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["token_type"], "Bearer");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    // Another client's certificate is refused.
    let answer = client_for(Some("other"), false)
        .post_form(&url, &form(PKI_CLIENT))
        .await
        .unwrap();
    assert_error(&answer, 401, "invalid_client");
    // No certificate at nginx: nginx forwards none, the gateway refuses.
    let answer = client_for(None, false)
        .post_form(&url, &form(PKI_CLIENT))
        .await
        .unwrap();
    assert_error(&answer, 401, "invalid_client");
    // A client trying to smuggle its own header through nginx: nginx overwrites it.
    let forged = crate::front_proxy::header_for("x-ssl-client-cert", "client")
        .remove(0)
        .1;
    let answer = post_with(
        Some("other"),
        &url,
        &form(PKI_CLIENT),
        [("x-ssl-client-cert", forged)],
    )
    .await;
    assert_error(&answer, 401, "invalid_client");
    h.stop().await;
}
