//! HTTPS serving (`--tls-cert-file`, `--tls-private-key-file`, PEM as kube reads them) with
//! rustls, and the optional client certificate request of `--client-ca-file`.
//!
//! Each connection: a client that speaks plain HTTP gets Go's answer (`400 Client sent an
//! HTTP request to an HTTPS server.`) and is closed; otherwise the TLS handshake (ALPN `h2`
//! and `http/1.1`; a client certificate, if sent, must chain to the client CA), then
//! HTTP/1.1 or HTTP/2 through hyper, each request carrying the connection's
//! [`PeerIdentity`]. Shutdown stops accepting and lets open connections finish their
//! requests.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{x509, UserInfo};

/// Who the TLS connection a request came on presented: the user of a verified client
/// certificate (None: no certificate, or one without a CommonName).
#[derive(Clone, Debug, Default)]
pub struct PeerIdentity {
    /// The certificate's user.
    pub user: Option<UserInfo>,
}

fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file.
///
/// Errors: an unreadable file, bad PEM, or no certificate in it, naming `flag` and the file.
pub fn read_certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |why: String| format!("{flag} {}: {why}", path.display());
    std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("invalid PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(bad("no PEM certificate found".into()));
    }
    Ok(certificates)
}

/// The rustls server config of the TLS flags: the serving certificate chain and key, and a
/// client certificate verifier over `client_ca` that lets clients without a certificate in
/// (bearer tokens and anonymous requests still work).
///
/// Errors: a message naming the flag and the file that is unreadable, not PEM, or whose key
/// does not match the certificate.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, String> {
    let chain = read_certificates("--tls-cert-file", cert)?;
    let bad_key = |why: String| format!("--tls-private-key-file {}: {why}", key.display());
    std::fs::metadata(key).map_err(|e| bad_key(e.to_string()))?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad_key(e.to_string()))?;
    let builder = ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates("--client-ca-file", path)? {
                roots.add(certificate).map_err(|e| format!("--client-ca-file {}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("--client-ca-file {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, private_key).map_err(|e| {
        format!("--tls-private-key-file {} does not fit --tls-cert-file {}: {e}", key.display(), cert.display())
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Go's net/http answer to plain HTTP on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Serves `service` over TLS on `listener` until `shutdown` completes, then waits for the
/// open connections to finish their requests.
pub async fn serve<S>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // See `server::no_delay`: a response's last small write is not held back.
        crate::server::no_delay(&stream);
        let acceptor = acceptor.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut stream = stream;
            let mut first = [0u8; 1];
            match tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await {
                Ok(Ok(1)) => {}
                _ => return,
            }
            // A TLS connection opens with a handshake record (0x16).
            if first[0] != 0x16 {
                if first[0].is_ascii_alphabetic() {
                    let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
                    let _ = stream.shutdown().await;
                    // Closing with the request still unread would reset the connection, and
                    // the client could lose the answer: read until it closes (≤ 1 s).
                    let mut sink = [0u8; 4096];
                    let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
                    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                }
                return;
            }
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer}: {e}");
                    return;
                }
                Err(_) => return,
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| x509::user_from_certificate(leaf));
            let identity = PeerIdentity { user };
            let hyper_service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(identity.clone());
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                service.clone().oneshot(request)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(tls), hyper_service).into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
