//! TLS: etcd serving https with client-certificate authentication, certificates generated
//! here with rcgen (a CA, a server certificate for 127.0.0.1, a client certificate).

use std::path::{Path, PathBuf};
use std::time::Duration;

use apistore::kv::{KvBackend, TxnOutcome};
use apistore::Error;
use apistore_etcd::{EtcdBackend, EtcdOptions};
use apistore_etcd_harness::{ClusterConfig, EtcdCluster, TlsFiles};
use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write pem");
    path
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("self-signed ca")
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("signed leaf");
    (cert.pem(), key.serialize_pem())
}

fn pki(dir: &Path) -> Pki {
    let ca = certificate_authority("apistore test CA");
    let (server_cert, server_key) = leaf(&ca, &["127.0.0.1", "localhost"], "etcd", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf(&ca, &[], "apistore", ExtendedKeyUsagePurpose::ClientAuth);
    let other = certificate_authority("some other CA");
    Pki {
        ca: write(dir, "ca.pem", &ca.pem()),
        server_cert: write(dir, "server.pem", &server_cert),
        server_key: write(dir, "server-key.pem", &server_key),
        client_cert: write(dir, "client.pem", &client_cert),
        client_key: write(dir, "client-key.pem", &client_key),
        other_ca: write(dir, "other-ca.pem", &other.pem()),
    }
}

fn options(cluster: &EtcdCluster, ca: &Path, identity: Option<(&Path, &Path)>) -> EtcdOptions {
    let mut options = EtcdOptions::new(cluster.endpoints());
    options.timeout_ms = 3000;
    options.compaction_interval_secs = 0;
    options.ca_file = Some(ca.to_owned());
    if let Some((cert, key)) = identity {
        options.cert_file = Some(cert.to_owned());
        options.key_file = Some(key.to_owned());
    }
    options
}

#[tokio::test]
async fn client_certificate_auth_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = pki(dir.path());
    let config = ClusterConfig {
        tls: Some(TlsFiles {
            ca_file: pki.ca.clone(),
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
        }),
        ..ClusterConfig::default()
    };
    let cluster = EtcdCluster::start(config).unwrap_or_else(|e| panic!("cannot start etcd with TLS: {e}"));
    assert!(cluster.endpoint(0).starts_with("https://"));

    // With the client certificate: everything works.
    let good =
        EtcdBackend::new(options(&cluster, &pki.ca, Some((&pki.client_cert, &pki.client_key)))).expect("backend");
    good.health().await.expect("healthy over TLS");
    let outcome = good.put("/tls/a", Bytes::from_static(b"secret"), 0, None).await.expect("put over TLS");
    assert!(matches!(outcome, TxnOutcome::Succeeded { .. }));
    assert_eq!(good.get("/tls/a", 0).await.expect("get").kv.expect("exists").value, Bytes::from_static(b"secret"));

    // Without a client certificate: a clear, typed error (no hang).
    let anonymous = EtcdBackend::new(options(&cluster, &pki.ca, None)).expect("backend");
    let started = std::time::Instant::now();
    let err = anonymous.get("/tls/a", 0).await.expect_err("a client without certificate must be refused");
    assert!(started.elapsed() < Duration::from_secs(4), "refusal took {:?}", started.elapsed());
    assert!(matches!(err, Error::Unavailable { .. } | Error::Timeout { .. }), "{err:?}");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("certificate") || text.contains("tls") || text.contains("handshake"), "unclear error: {err}");

    // Trusting the wrong CA: the server certificate is rejected.
    let distrustful =
        EtcdBackend::new(options(&cluster, &pki.other_ca, Some((&pki.client_cert, &pki.client_key)))).expect("backend");
    let err = distrustful.get("/tls/a", 0).await.expect_err("an unknown server CA must be refused");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("certificate") || text.contains("issuer") || text.contains("tls"), "unclear error: {err}");

    // Plain http against the TLS port fails too.
    let mut plain = EtcdOptions::new([cluster.endpoint(0).replacen("https://", "http://", 1)]);
    plain.timeout_ms = 2000;
    plain.compaction_interval_secs = 0;
    assert!(EtcdBackend::new(plain).expect("backend").get("/tls/a", 0).await.is_err());
}

#[tokio::test]
async fn missing_tls_files_are_invalid_options() {
    let mut options = EtcdOptions::new(["https://127.0.0.1:1"]);
    options.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let err = EtcdBackend::new(options).expect_err("unreadable CA file");
    assert_eq!(err.code(), 422);
    assert!(err.to_string().contains("ca_file"), "{err}");
}
