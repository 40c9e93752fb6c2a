//! TLS to `https` CRMs: the client configuration (certificates always verified), extra CAs
//! (`--ca-cert`), and why a handshake failed, in words an operator can act on.

use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// The TLS client configuration: the webpki (Mozilla) roots plus `extra_roots` (a private
/// CA, `--ca-cert`); certificate verification is always on.
pub fn tls_config(extra_roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let (added, ignored) = roots.add_parsable_certificates(extra_roots.iter().cloned());
    if ignored > 0 {
        tracing::warn!(
            added,
            ignored,
            "some extra CA certificates could not be used"
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// Read PEM CA certificates to trust in addition to the webpki roots.
pub fn load_ca_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// What went wrong in a TLS handshake, as the component is told it and as the operator reads
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// The certificate was refused (rather than the handshake failing otherwise).
    pub certificate: bool,
    /// Why, naming what to do where there is something to do; never weakens verification.
    pub reason: String,
}

/// Why the handshake with `host` failed, from the error tokio-rustls returned.
pub fn tls_failure(error: &std::io::Error, host: &str) -> TlsFailure {
    use rustls::{CertificateError, Error};
    let Some(rustls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return TlsFailure {
            certificate: false,
            reason: format!("the TLS handshake failed: {}", error.kind()),
        };
    };
    let certificate = |reason: String| TlsFailure {
        certificate: true,
        reason,
    };
    match rustls {
        Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer => certificate(
                "certificate not trusted (unknown issuer; `--ca-cert` adds a CA)".into(),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                certificate(format!("certificate name mismatch (not valid for {host})"))
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                certificate("certificate expired".into())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                certificate("certificate not valid yet (check the clocks)".into())
            }
            CertificateError::Revoked => certificate("certificate revoked".into()),
            CertificateError::BadSignature => certificate("certificate signature invalid".into()),
            CertificateError::BadEncoding => certificate("certificate unreadable".into()),
            other => certificate(format!("certificate refused ({other:?})")),
        },
        Error::AlertReceived(alert) => TlsFailure {
            certificate: false,
            reason: format!("the CRM ended the TLS handshake (alert {alert:?})"),
        },
        other => TlsFailure {
            certificate: false,
            reason: format!("the TLS handshake failed: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(error: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn certificate_problems_are_named() {
        use rustls::CertificateError as C;
        for (problem, says) in [
            (
                C::UnknownIssuer,
                "certificate not trusted (unknown issuer; `--ca-cert` adds a CA)",
            ),
            (
                C::NotValidForName,
                "certificate name mismatch (not valid for crm.example.com)",
            ),
            (C::Expired, "certificate expired"),
            (
                C::NotValidYet,
                "certificate not valid yet (check the clocks)",
            ),
        ] {
            let failure = tls_failure(
                &io(rustls::Error::InvalidCertificate(problem)),
                "crm.example.com",
            );
            assert!(failure.certificate);
            assert_eq!(failure.reason, says);
        }
    }

    #[test]
    fn other_failures_say_what_happened() {
        let failure = tls_failure(
            &io(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure,
            )),
            "crm",
        );
        assert!(!failure.certificate);
        assert!(
            failure.reason.contains("HandshakeFailure"),
            "{}",
            failure.reason
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(tls_failure(&reset, "crm").reason.contains("reset"));
    }
}
