//! A real nginx terminates mTLS and forwards `$ssl_client_escaped_cert` to the gateway's plain
//! listener, as a platform team would deploy it: the shipped examples/deploy/nginx files.

use crate::support::process::{nginx_t, shipped_nginx, start_nginx};
use crate::support::*;

#[tokio::test]
async fn nginx_terminating_mtls_forwards_the_certificate_to_the_plain_listener() {
    let mut setup = Setup::new();
    setup.clients.push_str("[front_proxy]\nheader = \"x-ssl-client-cert\"\ntrusted_peers = [\"127.0.0.1/32\"]\nplain_listen = \"127.0.0.1:0\"\n");
    let h = setup.start().await;
    let plain = h.running.as_ref().unwrap().plain_addr.unwrap();
    let dir = &h.setup.dir.0;
    // The shipped examples/deploy/nginx/nginx.conf, only ports and paths changed.
    let conf = |port: u16| {
        shipped_nginx(
            "nginx.conf",
            dir,
            port,
            &[("server 127.0.0.1:8080;", format!("server {plain};"))],
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
    assert_token(&answer);
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

/// Every shipped nginx example is a whole configuration `nginx -t` accepts (with its host paths
/// moved into a test folder that holds real certificates), and `nginx -t` does refuse a
/// fragment, so the check means something.
#[test]
fn every_shipped_nginx_file_passes_nginx_t() {
    let setup = Setup::new();
    let dir = &setup.dir.0;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("examples/deploy/nginx")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".conf") {
            continue;
        }
        let conf = shipped_nginx(&name, dir, 44443, &[]);
        let Some(result) = nginx_t(dir, &conf) else {
            return;
        };
        assert_eq!(result, Ok(()), "{name}");
        checked += 1;
    }
    assert!(checked >= 2, "{checked} files");
    let fragment = "upstream g { server 127.0.0.1:1; }\nserver { listen 1; }\n";
    assert!(nginx_t(dir, fragment).is_some_and(|r| r.is_err()));
}
