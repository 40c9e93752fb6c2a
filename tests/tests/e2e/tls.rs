//! HTTPS CRMs: certificates are always verified; a private CA is trusted only when given.

use callroute_host::RouterConfig;
use callroute_tests::*;

fn trusting(
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> callroute_host::Router {
    router().with_config(RouterConfig {
        allow_private_network: true,
        extra_roots,
        ..RouterConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crm_signed_by_a_trusted_extra_ca_works() {
    let crm = TlsCrm::start("380123456789");
    for host in ["localhost", "127.0.0.1"] {
        let report = trusting(test_ca())
            .route(&scheme(&[("url", &crm.url(host))]), &seed_call())
            .await;
        assert_eq!(
            routed(&report).0,
            Target::Phone("380123456789".into()),
            "{host}"
        );
    }
}

/// Calls to `crm`, under each of its names, fail as `transport` errors naming TLS and saying
/// `why(host)`.
async fn refused_saying(
    router: callroute_host::Router,
    crm: &TlsCrm,
    why: impl Fn(&str) -> String,
) {
    for host in ["localhost", "127.0.0.1"] {
        let report = router
            .route(&scheme(&[("url", &crm.url(host))]), &seed_call())
            .await;
        let error = failed(&report);
        assert_eq!(error.kind, ErrorKind::Transport, "{host}: {error}");
        assert!(error.message.contains("TLS"), "{host}: {error}");
        assert!(error.message.contains(&why(host)), "{host}: {error}");
    }
}

/// A certificate from a CA the host does not trust is a `transport` error that says so and
/// names the remedy, not just "TLS failed".
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_ca_is_a_transport_error() {
    let crm = TlsCrm::start("380123456789");
    refused_saying(router(), &crm, |_| {
        "certificate not trusted (unknown issuer; `--ca-cert` adds a CA)".into()
    })
    .await;
}

/// A certificate from a trusted CA for another name (`other.example` only) is refused as a
/// name mismatch, naming the host it was not valid for. The CRM is reached on the address it
/// listens on, so the handshake itself is what fails, not the connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_another_name_is_refused() {
    let crm = TlsCrm::start_with("wrong-name.pem", "wrong-name.key", "380123456789");
    refused_saying(trusting(second_test_ca()), &crm, |host| {
        format!("certificate name mismatch (not valid for {host})")
    })
    .await;
}

/// An expired certificate from a trusted CA, for the right name, is refused as expired.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_is_refused() {
    let crm = TlsCrm::start_with("expired.pem", "expired.key", "380123456789");
    refused_saying(trusting(second_test_ca()), &crm, |_| {
        "certificate expired".into()
    })
    .await;
}

/// A kept-alive HTTPS connection that the CRM closes (with TLS's close_notify) as the next
/// request arrives fails that request before any byte of an answer: it goes once more on a
/// fresh connection, and every call is routed. (The alert is bytes on the socket, but not an
/// answer: what the CRM sends is counted above TLS.)
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_https_connection_the_crm_closed_is_replaced() {
    let crm = TlsCrm::start_closing_when_reused("380123456789");
    let router = trusting(test_ca());
    let scheme = scheme(&[
        ("url", &crm.url("localhost")),
        ("response_timeout_secs", "2"),
    ]);
    for call in 0..10 {
        let report = router.route(&scheme, &seed_call()).await;
        assert_eq!(
            routed(&report).0,
            Target::Phone("380123456789".into()),
            "call {call}"
        );
    }
}
