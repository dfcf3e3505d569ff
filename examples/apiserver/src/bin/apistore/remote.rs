//! `--server`: the admin endpoints of a running API server (`/apistore/admin/...`), with
//! kubeconfig-style credentials: `--token`, `--client-cert`/`--client-key`,
//! `--certificate-authority`, or the current context of `--kubeconfig` (flags win).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{self, Uri};
use clap::Args;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// How to reach a running API server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A running API server (http://127.0.0.1:8080, https://...): work on the store it holds
    /// open, through its admin endpoints.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for the server.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Client certificate (PEM) for the server.
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) of --client-cert.
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// CA certificate (PEM) the server's certificate chains to.
    #[arg(long, global = true, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// A kubeconfig: server and credentials of its current context (the flags above win).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// A PEM given as a file or as base64 data (kubeconfig's `*-data` fields).
#[derive(Clone, Debug)]
enum Pem {
    File(PathBuf),
    Data(Vec<u8>),
}

impl Pem {
    fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display())),
            Pem::Data(data) => Ok(data.clone()),
        }
    }
}

/// The admin endpoints of one server.
pub struct Remote {
    uri: Uri,
    tls: Option<tokio_rustls::TlsConnector>,
    token: Option<String>,
}

/// A response: status and streamed body.
pub type Response = http::Response<Body>;

fn kube_field(value: &Value, list: &str, name: &str, field: &str) -> Option<Value> {
    value[list].as_array()?.iter().find(|entry| entry["name"].as_str() == Some(name)).map(|entry| entry[field].clone())
}

fn pem_of(section: &Value, file_key: &str, data_key: &str, base: &Path) -> Result<Option<Pem>, String> {
    use base64::Engine;
    if let Some(data) = section[data_key].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("kubeconfig {data_key}: not base64: {e}"))?;
        return Ok(Some(Pem::Data(bytes)));
    }
    Ok(section[file_key].as_str().map(|file| Pem::File(base.join(file))))
}

impl Remote {
    /// The server the arguments name, or None without `--server` or `--kubeconfig`.
    ///
    /// Errors: an unreadable kubeconfig or PEM file, an https server without a CA.
    pub fn from_args(args: &ServerArgs) -> Result<Option<Remote>, String> {
        let mut server = None;
        let mut token = None;
        let mut cert = None;
        let mut key = None;
        let mut ca = None;
        if let Some(path) = &args.kubeconfig {
            let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let config: Value =
                serde_yaml::from_str(&text).map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            let base = path.parent().unwrap_or(Path::new("."));
            let context = config["current-context"].as_str().unwrap_or_default().to_owned();
            let context = kube_field(&config, "contexts", &context, "context").unwrap_or(Value::Null);
            let cluster_name = context["cluster"].as_str().unwrap_or_default();
            let user_name = context["user"].as_str().unwrap_or_default();
            let cluster = kube_field(&config, "clusters", cluster_name, "cluster").unwrap_or(Value::Null);
            let user = kube_field(&config, "users", user_name, "user").unwrap_or(Value::Null);
            server = cluster["server"].as_str().map(str::to_owned);
            ca = pem_of(&cluster, "certificate-authority", "certificate-authority-data", base)?;
            token = user["token"].as_str().map(str::to_owned);
            cert = pem_of(&user, "client-certificate", "client-certificate-data", base)?;
            key = pem_of(&user, "client-key", "client-key-data", base)?;
        }
        if let Some(url) = &args.server {
            server = Some(url.clone());
        }
        let Some(server) = server else { return Ok(None) };
        if let Some(t) = &args.token {
            token = Some(t.clone());
        }
        if let (Some(c), Some(k)) = (&args.client_cert, &args.client_key) {
            cert = Some(Pem::File(c.clone()));
            key = Some(Pem::File(k.clone()));
        }
        if let Some(c) = &args.certificate_authority {
            ca = Some(Pem::File(c.clone()));
        }
        let uri: Uri = server.trim_end_matches('/').parse().map_err(|e| format!("--server {server}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => {
                let ca = ca.ok_or("an https server needs --certificate-authority (or a kubeconfig with one)")?;
                let config = tls_config(&ca, cert.as_ref().zip(key.as_ref()))?;
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
            Some("http") => None,
            _ => return Err(format!("--server {server}: not an http:// or https:// URL")),
        };
        Ok(Some(Remote { uri, tls, token }))
    }

    /// Sends a request to `/apistore/admin/<path>` over a new HTTP/1.1 connection; a non-2xx
    /// answer is an error with the server's Status message.
    pub async fn send(&self, method: http::Method, path: &str, body: Body) -> Result<Response, String> {
        let host = self.uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_owned();
        let port = self.uri.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", self.uri);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| fail(&e))?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("/apistore/admin/{path}"))
            .header(http::header::HOST, self.uri.authority().map(|a| a.as_str()).unwrap_or(host.as_str()));
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(body).map_err(|e| fail(&e))?;
        let response = match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| fail(&e))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| fail(&e))?;
                exchange(TokioIo::new(stream), request).await
            }
            None => exchange(TokioIo::new(tcp), request).await,
        }
        .map_err(|e| fail(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status().as_u16();
        let text = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).into_owned();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|status| status["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        Err(format!("the server answered {code}: {message}"))
    }
}

/// One request and its response on a new connection.
async fn exchange<S>(io: TokioIo<S>, request: http::Request<Body>) -> Result<Response, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await?;
    Ok(response.map(Body::new))
}

/// A rustls client config (ring) trusting `ca`, with a client certificate when given.
fn tls_config(ca: &Pem, identity: Option<(&Pem, &Pem)>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let ca_bytes = ca.bytes()?;
    for cert in CertificateDer::pem_slice_iter(&ca_bytes) {
        let cert = cert.map_err(|e| format!("the certificate authority: {e}"))?;
        roots.add(cert).map_err(|e| format!("the certificate authority: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match identity {
        Some((cert, key)) => {
            let cert_bytes = cert.bytes()?;
            let certs = CertificateDer::pem_slice_iter(&cert_bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&key.bytes()?).map_err(|e| format!("the client key: {e}"))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| format!("the client certificate: {e}"))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}
