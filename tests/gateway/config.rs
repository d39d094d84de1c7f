//! SPEC §3: configurations `check` and `serve` refuse, all problems reported at once.

use crate::support::*;

fn problems(setup: &Setup) -> String {
    let path = setup.write();
    mtls_gateway::config::load(&path).unwrap_err().to_string()
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let setup = Setup::new()
        .credential(
            "[credentials.dev]\ncert = \"signing.pem\"\nkey = \"signing2-key.pem\"\n\n[credentials.hs]\ncert = \"signing.pem\"\nkey = \"signing-key.pem\"\nalg = \"HS256\"\n\n[credentials.gone]\ncert = \"missing.pem\"\nkey = \"signing-key.pem\"\n",
        )
        .only_clients(
            r#"
[[clients]]
client_id = "a"
upstream = "nowhere"
credential = "dev"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=a"

[[clients]]
client_id = "a"
upstream = "dev"
credential = "dev"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=a"

[[clients]]
client_id = "two-selectors"
upstream = "dev"
credential = "nocred"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=a"
tls_client_auth_san_dns = "a.example"

[[clients]]
client_id = "no-selector"
upstream = "dev"
credential = "dev"
token_endpoint_auth_method = "tls_client_auth"

[[clients]]
client_id = "self-signed-nothing"
upstream = "dev"
credential = "dev"
token_endpoint_auth_method = "self_signed_tls_client_auth"

[[clients]]
client_id = "openssl-dn"
upstream = "dev"
credential = "dev"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "/C=US/O=Contoso/CN=app"

[[clients]]
client_id = "bad-ip"
upstream = "dev"
credential = "dev"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_ip = "10.1.2"
"#,
        );
    let text = problems(&setup);
    for expected in [
        "credentials.dev: the private key does not match the certificate",
        "credentials.hs.alg: \"HS256\" is not \"RS256\", \"PS256\" or \"ES256\"",
        "credentials.gone.cert: cannot read",
        "clients[0] (client_id \"a\").upstream: no [upstreams.nowhere] is defined",
        "clients[1] (client_id \"a\"): client_id is registered more than once",
        "clients[2] (client_id \"two-selectors\"): tls_client_auth needs exactly one tls_client_auth_* selector",
        "clients[2] (client_id \"two-selectors\").credential: no usable [credentials.nocred]",
        "clients[3] (client_id \"no-selector\"): tls_client_auth needs exactly one of",
        "clients[4] (client_id \"self-signed-nothing\"): self_signed_tls_client_auth needs self_signed_certs or self_signed_thumbprints",
        "tls_client_auth_san_ip: \"10.1.2\" is not an IPv4 or IPv6 address",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn unknown_keys_are_refused_with_line_and_key() {
    let setup = Setup::new().server("listen_backlog = 5");
    let text = problems(&setup);
    assert!(text.contains("unknown field `listen_backlog`"), "{text}");
    assert!(text.contains("line 7"), "{text}");
}

#[test]
fn a_server_key_that_does_not_match_its_certificate_is_refused() {
    let setup = Setup::new();
    let toml = setup
        .toml()
        .replace("key = \"server-key.pem\"", "key = \"client-key.pem\"");
    setup.dir.write("gateway.toml", &toml);
    let text = mtls_gateway::config::load(&setup.dir.path("gateway.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("server.key: the private key does not match the server certificate"),
        "{text}"
    );
}

#[test]
fn multi_tenant_aliases_and_plain_http_upstreams_are_refused() {
    let setup = Setup::new().upstream(
        "[upstreams.dev]\ntype = \"entra\"\ntenant = \"common\"\n\n[upstreams.g]\ntype = \"generic\"\ntoken_endpoint = \"http://idp.example/token\"\n",
    );
    let text = problems(&setup);
    assert!(text.contains("upstreams.dev.tenant"), "{text}");
    assert!(
        text.contains("upstreams.g.token_endpoint: must start with https://"),
        "{text}"
    );
}

#[test]
fn an_openssl_slash_dn_loads_with_a_warning_naming_its_rfc4514_spelling() {
    let setup = Setup::new().only_clients(&pki_client(
        "x",
        "tls_client_auth_subject_dn = \"/C=US/O=Contoso/CN=billing-legacy\"",
    ));
    let config = mtls_gateway::config::load(&setup.write()).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("OpenSSL's") && w.contains("\"CN=billing-legacy,O=Contoso,C=US\"")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn a_dn_in_der_order_loads_with_a_warning() {
    let setup = Setup::new().only_clients(&pki_client(
        "x",
        "tls_client_auth_subject_dn = \"C=US,O=Contoso,CN=billing-legacy\"",
    ));
    let config = mtls_gateway::config::load(&setup.write()).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("most general RDN first")
                && w.contains("write \"CN=billing-legacy,O=Contoso,C=US\"")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn durations_and_limits_have_their_defaults() {
    let setup = Setup::new();
    let config = mtls_gateway::config::load(&setup.write()).unwrap();
    let l = &config.limits;
    assert_eq!(l.max_body_bytes, 65536);
    assert_eq!(l.header_read_timeout, std::time::Duration::from_secs(10));
    assert_eq!(l.request_timeout, std::time::Duration::from_secs(30));
    assert_eq!(l.max_connections, 10000);
    assert_eq!(l.shutdown_grace, std::time::Duration::from_secs(30));
    assert_eq!(
        config.upstreams["dev"].timeout,
        std::time::Duration::from_secs(10)
    );
}

#[cfg(unix)]
#[test]
fn private_keys_readable_by_others_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new();
    let key = setup.dir.path("signing-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        setup.dir.path("server-key.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let config = mtls_gateway::config::load(&setup.write()).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("credentials.dev.key") && w.contains("chmod 600")),
        "{:?}",
        config.warnings
    );
    assert!(
        !config.warnings.iter().any(|w| w.contains("server.key")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn a_public_url_of_the_unspecified_address_is_warned_about() {
    let setup = Setup::new();
    let toml = setup
        .toml()
        .replace("public_url = \"https://gateway.test\"\n", "")
        .replace(
            "listen = \"127.0.0.1:0\"\npublic_url",
            "listen = \"0.0.0.0:0\"\npublic_url",
        )
        .replacen(
            "[server]\nlisten = \"127.0.0.1:0\"",
            "[server]\nlisten = \"0.0.0.0:0\"",
            1,
        );
    let path = setup.dir.write("gateway.toml", &toml);
    let config = mtls_gateway::config::load(&path).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w
                .starts_with("server.public_url: the metadata would advertise https://0.0.0.0:0")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn a_client_ca_that_is_not_a_ca_is_refused() {
    let setup = Setup::new();
    let toml = setup.toml().replace(
        "client_ca = [\"ca1.pem\", \"ca2.pem\"]",
        "client_ca = [\"ca1.pem\", \"client.pem\"]",
    );
    let path = setup.dir.write("gateway.toml", &toml);
    let err = mtls_gateway::config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("server.client_ca[1]") && err.contains("is not a CA certificate"),
        "{err}"
    );
}
