//! TLS to engines behind `https://` (an inference service behind a TLS proxy, a remote vLLM). Plain HTTP stays the
//! fast path: a connection is TLS only when its replica's URL says so, and the client configuration (the system's
//! root certificates, plus a configured CA) is built on the first TLS connection, so a gateway with only
//! `http://` engines never reads a certificate store.

use std::sync::{Arc, OnceLock};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Whom `https://` engines are trusted by: the system's roots and any configured CA certificates. Cheap to clone.
#[derive(Clone, Default)]
pub struct EngineTls {
    extra: Arc<Vec<CertificateDer<'static>>>,
    connector: Arc<OnceLock<Result<TlsConnector, String>>>,
}

impl std::fmt::Debug for EngineTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineTls")
            .field("extra_cas", &self.extra.len())
            .finish()
    }
}

impl EngineTls {
    /// Trusts the CA certificates in `pem` (one or more `BEGIN CERTIFICATE` blocks) beside the system's roots.
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, String> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err("no certificate in it (expected PEM `BEGIN CERTIFICATE` blocks)".into());
        }
        // Checked now, so a certificate rustls cannot use is an error at start, not at the first request.
        let mut roots = RootCertStore::empty();
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|e| format!("a certificate cannot be used as a CA: {e}"))?;
        }
        Ok(Self {
            extra: Arc::new(certs),
            connector: Arc::default(),
        })
    }

    /// As [`EngineTls::with_ca_pem`], from a file.
    pub fn with_ca_file(path: &std::path::Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::with_ca_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The connector, built on first use.
    pub(super) fn connector(&self) -> Result<&TlsConnector, &str> {
        let built = self.connector.get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!(%error, "a system root certificate could not be read");
            }
            let (added, _) = roots.add_parsable_certificates(native.certs);
            for cert in self.extra.iter() {
                // Checked in `with_ca_pem`.
                let _ = roots.add(cert.clone());
            }
            tracing::debug!(
                system = added,
                configured = self.extra.len(),
                "root certificates for https:// engines"
            );
            let config = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(TlsConnector::from(Arc::new(config)))
        });
        built.as_ref().map_err(String::as_str)
    }
}
