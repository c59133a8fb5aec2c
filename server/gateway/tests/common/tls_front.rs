//! An `https://` engine for tests and benchmarks: a TLS terminator, with the test CA's engine certificate
//! (`tests/fixtures/tls`, for `localhost`, 127.0.0.1 and ::1), in front of a plain HTTP engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A file of the test PKI: `ca.pem`, `engine.pem`, `engine.key`.
pub fn fixture(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tls")
        .join(name)
}

/// Listens for TLS on a random port of 127.0.0.1 and relays each session to `engine`; counts the TLS sessions
/// it completed.
pub async fn tls_front(engine: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let certs = CertificateDer::pem_file_iter(fixture("engine.pem"))
        .expect("engine.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("engine.pem");
    let key = PrivateKeyDer::from_pem_file(fixture("engine.key")).expect("engine.key");
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sessions = Arc::new(AtomicUsize::new(0));
    let counted = sessions.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                let Ok(mut plain) = TcpStream::connect(engine).await else {
                    return;
                };
                let _ = plain.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, sessions)
}
