//! SPEC §5 / RFC 8705 §2: binding a certificate to a client, over real handshakes.

use crate::support::*;

const ID: &str = "11111111-aaaa-bbbb-cccc-000000000001";

async fn with_selector(selector: &str) -> Harness {
    Setup::new()
        .only_clients(&pki_client(ID, selector))
        .start()
        .await
}

async fn status_for(h: &Harness, cert: &str) -> (u16, String) {
    let answer = h.token(Some(cert), &form(ID)).await;
    (
        answer.status.as_u16(),
        answer.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn subject_dn_matches_as_parsed_rdns_not_strings() {
    for dn in [
        "CN=billing-legacy,O=Contoso,C=US",
        "cn=BILLING-LEGACY,o=contoso,c=us",
        "2.5.4.3=billing-legacy,OID.2.5.4.10=Contoso,C=US",
        "CN=  billing-legacy ,O=Contoso, C=US",
    ] {
        let h = with_selector(&format!("tls_client_auth_subject_dn = \"{dn}\"")).await;
        assert_eq!(status_for(&h, "client").await.0, 200, "{dn}");
        h.stop().await;
    }
}

#[tokio::test]
async fn an_openssl_slash_subject_dn_means_the_same_dn() {
    let h =
        with_selector("tls_client_auth_subject_dn = \"/C=US/O=Contoso/CN=billing-legacy\"").await;
    assert_eq!(status_for(&h, "client").await.0, 200);
    assert_eq!(status_for(&h, "other").await.0, 401);
    h.stop().await;
}

#[tokio::test]
async fn a_reversed_or_different_subject_dn_does_not_match() {
    for dn in [
        "C=US,O=Contoso,CN=billing-legacy",
        "CN=billing-legacy,O=Contoso",
        "CN=billing,O=Contoso,C=US",
    ] {
        let h = with_selector(&format!("tls_client_auth_subject_dn = \"{dn}\"")).await;
        let (status, description) = status_for(&h, "client").await;
        assert_eq!(status, 401, "{dn}");
        assert!(
            description.contains("subject DN does not match"),
            "{description}"
        );
        // The expected DN is never echoed.
        assert!(!description.contains("billing"), "{description}");
        h.stop().await;
    }
}

#[tokio::test]
async fn escaped_characters_in_a_dn_are_decoded_before_comparing() {
    let h = with_selector(r#"tls_client_auth_subject_dn = 'CN=Smith\, John,O=A\+B'"#).await;
    assert_eq!(status_for(&h, "escaped").await.0, 200);
    h.stop().await;
}

#[tokio::test]
async fn dns_san_matches_case_insensitively() {
    let h = with_selector("tls_client_auth_san_dns = \"billing.contoso.internal\"").await;
    assert_eq!(status_for(&h, "client").await.0, 200);
    assert_eq!(status_for(&h, "other").await.0, 401);
    h.stop().await;
    let h = with_selector("tls_client_auth_san_dns = \"payroll.contoso.internal\"").await;
    let (status, description) = status_for(&h, "client").await;
    assert_eq!(status, 401);
    assert!(description.contains("DNS SAN"), "{description}");
    h.stop().await;
}

#[tokio::test]
async fn uri_san_matches_exactly() {
    let h = with_selector("tls_client_auth_san_uri = \"spiffe://contoso/billing\"").await;
    assert_eq!(status_for(&h, "client").await.0, 200);
    h.stop().await;
    let h = with_selector("tls_client_auth_san_uri = \"spiffe://contoso/Billing\"").await;
    assert_eq!(status_for(&h, "client").await.0, 401);
    h.stop().await;
}

#[tokio::test]
async fn ip_san_compares_addresses_not_strings() {
    for ip in ["10.1.2.3", "::1", "0:0:0:0:0:0:0:1"] {
        let h = with_selector(&format!("tls_client_auth_san_ip = \"{ip}\"")).await;
        assert_eq!(status_for(&h, "client").await.0, 200, "{ip}");
        h.stop().await;
    }
    let h = with_selector("tls_client_auth_san_ip = \"10.1.2.4\"").await;
    assert_eq!(status_for(&h, "client").await.0, 401);
    h.stop().await;
}

#[tokio::test]
async fn email_san_matches_exactly() {
    let h = with_selector("tls_client_auth_san_email = \"billing@contoso.com\"").await;
    assert_eq!(status_for(&h, "client").await.0, 200);
    h.stop().await;
    let h = with_selector("tls_client_auth_san_email = \"payroll@contoso.com\"").await;
    assert_eq!(status_for(&h, "client").await.0, 401);
    h.stop().await;
}

#[tokio::test]
async fn another_clients_certificate_is_refused() {
    let h = Setup::new().start().await;
    // "other" chains to a trusted CA but is not billing-legacy.
    let answer = h.token(Some("other"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    // The self-signed client's certificate does not authenticate the PKI client, and vice versa.
    assert_error(
        &h.token(Some("selfsigned"), &form(PKI_CLIENT)).await,
        401,
        "invalid_client",
    );
    assert_error(
        &h.token(Some("client"), &form(SELF_SIGNED_CLIENT)).await,
        401,
        "invalid_client",
    );
    h.stop().await;
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused_with_the_reason() {
    let h = Setup::new().start().await;
    let answer = h.token(Some("untrusted"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("not issued by a trusted CA"));
    h.stop().await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_certificates_are_refused() {
    let h = Setup::new().start().await;
    let answer = h.token(Some("expired"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let answer = h.token(Some("not-yet-valid"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("not yet valid"));
    h.stop().await;
}

#[tokio::test]
async fn a_certificate_without_client_auth_usage_is_refused() {
    let h = Setup::new().start().await;
    let answer = h.token(Some("server-eku-only"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("extended key usage"));
    h.stop().await;
}

#[tokio::test]
async fn a_chain_through_an_intermediate_verifies() {
    let h = Setup::new().start().await;
    // The client sends leaf + intermediate.
    assert_eq!(
        h.token(Some("via-intermediate-chain"), &form(PKI_CLIENT))
            .await
            .status,
        200
    );
    // Leaf only: unknown issuer ...
    assert_error(
        &h.token(Some("via-intermediate-leaf"), &form(PKI_CLIENT))
            .await,
        401,
        "invalid_client",
    );
    h.stop().await;
    // ... unless the intermediate is configured.
    let h = Setup::new()
        .server("client_intermediates = [\"intermediate.pem\"]")
        .start()
        .await;
    assert_eq!(
        h.token(Some("via-intermediate-leaf"), &form(PKI_CLIENT))
            .await
            .status,
        200
    );
    h.stop().await;
}

#[tokio::test]
async fn a_pinned_ca_refuses_the_same_dn_from_another_trusted_ca() {
    let pinned =
        format!("tls_client_auth_subject_dn = \"{PKI_DN}\"\ntls_client_auth_ca = \"ca1.pem\"");
    let h = with_selector(&pinned).await;
    assert_eq!(status_for(&h, "client").await.0, 200);
    let (status, description) = status_for(&h, "same-dn-ca2").await;
    assert_eq!(status, 401);
    assert!(
        description.contains("not issued by a trusted CA"),
        "{description}"
    );
    h.stop().await;
    // Unpinned, the CA2 certificate with the same DN is accepted: that is what the pin prevents.
    let h = with_selector(&format!("tls_client_auth_subject_dn = \"{PKI_DN}\"")).await;
    assert_eq!(status_for(&h, "same-dn-ca2").await.0, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_pin_may_name_a_ca_outside_client_ca() {
    let h = with_selector(&format!(
        "tls_client_auth_subject_dn = \"{PKI_DN}\"\ntls_client_auth_ca = \"ca3.pem\""
    ))
    .await;
    assert_eq!(status_for(&h, "untrusted").await.0, 200);
    assert_eq!(status_for(&h, "client").await.0, 401);
    h.stop().await;
}

#[tokio::test]
async fn self_signed_clients_match_by_thumbprint() {
    let pki = pki();
    let thumbprint = mtls_gateway::identity::x5t_s256(pki.cert_der("selfsigned2").as_ref());
    let h = Setup::new()
        .only_clients(&format!(
            "[[clients]]\nclient_id = \"{ID}\"\nupstream = \"dev\"\ncredential = \"dev\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_thumbprints = [\"{thumbprint}\"]\n"
        ))
        .start()
        .await;
    assert_eq!(status_for(&h, "selfsigned2").await.0, 200);
    // Same subject, different key: not registered.
    let (status, description) = status_for(&h, "selfsigned").await;
    assert_eq!(status, 401);
    assert!(description.contains("not registered"), "{description}");
    h.stop().await;
}

#[tokio::test]
async fn the_method_comes_from_the_registration_not_the_chain() {
    // A CA-issued certificate registered by thumbprint works as a self-signed client ...
    let pki = pki();
    let thumbprint = mtls_gateway::identity::x5t_s256(pki.cert_der("untrusted").as_ref());
    let h = Setup::new()
        .only_clients(&format!(
            "[[clients]]\nclient_id = \"{ID}\"\nupstream = \"dev\"\ncredential = \"dev\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_thumbprints = [\"{thumbprint}\"]\n"
        ))
        .start()
        .await;
    assert_eq!(status_for(&h, "untrusted").await.0, 200);
    h.stop().await;
    // ... and a self-signed certificate is no PKI client.
    let h =
        with_selector("tls_client_auth_subject_dn = \"CN=legacy-selfsigned,O=mtls-gateway dev\"")
            .await;
    assert_eq!(status_for(&h, "selfsigned").await.0, 401);
    h.stop().await;
}

#[tokio::test]
async fn an_expired_self_signed_certificate_is_refused() {
    let pki = pki();
    let thumbprint = mtls_gateway::identity::x5t_s256(pki.cert_der("expired").as_ref());
    let h = Setup::new()
        .only_clients(&format!(
            "[[clients]]\nclient_id = \"{ID}\"\nupstream = \"dev\"\ncredential = \"dev\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\nself_signed_thumbprints = [\"{thumbprint}\"]\n"
        ))
        .start()
        .await;
    let (status, description) = status_for(&h, "expired").await;
    assert_eq!(status, 401);
    assert!(description.contains("expired"), "{description}");
    h.stop().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_and_a_stale_crl_fails_closed() {
    let h = Setup::new().server("crl = [\"crl.pem\"]").start().await;
    assert_eq!(h.token(Some("client"), &form(PKI_CLIENT)).await.status, 200);
    let answer = h.token(Some("revoked"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    // CA2 has no CRL configured: its certificates are not revocation-checked.
    assert_eq!(
        h.token(Some("same-dn-ca2"), &form(PKI_CLIENT)).await.status,
        200
    );
    h.stop().await;
    let h = Setup::new()
        .server("crl = [\"crl-stale.pem\"]")
        .start()
        .await;
    let answer = h.token(Some("client"), &form(PKI_CLIENT)).await;
    assert_error(&answer, 401, "invalid_client");
    assert!(answer.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("revocation status"));
    h.stop().await;
}
