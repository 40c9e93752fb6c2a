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

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_ca_is_a_transport_error() {
    let crm = TlsCrm::start("380123456789");
    let report = trusting(Vec::new())
        .route(&scheme(&[("url", &crm.url("localhost"))]), &seed_call())
        .await;
    let error = failed(&report);
    assert_eq!(error.kind, ErrorKind::Transport, "{error}");
    assert!(error.message.contains("TLS"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_another_name_is_refused() {
    // The certificate names localhost and 127.0.0.1, not this alias of loopback.
    let crm = TlsCrm::start("380123456789");
    let report = trusting(test_ca())
        .route(&scheme(&[("url", &crm.url("127.0.0.2"))]), &seed_call())
        .await;
    assert_eq!(failed(&report).kind, ErrorKind::Transport);
}
