//! TLS for a test's nodes and clients: `quotad certs dev` certificates
//! that every client helper (gRPC, the routing client, REST) uses for a
//! node's `https://` URLs. One set per test process (nextest runs each
//! test in its own): a second [`enable`] in the same process keeps the
//! first set.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Write a development CA, node and client certificates into `dir` for
/// `hosts`, and make every client of this process use them.
pub fn enable(dir: &Path, hosts: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quotad"))
        .args(["certs", "dev", "--hosts", &hosts.join(","), "--out"])
        .arg(dir)
        .output()
        .expect("run quotad certs dev");
    assert!(
        out.status.success(),
        "quotad certs dev: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = DIR.set(dir.to_path_buf());
}

/// The certificates' directory, when TLS is on.
pub fn dir() -> Option<&'static Path> {
    DIR.get().map(PathBuf::as_path)
}

/// `quotad serve` arguments for TLS on every port with client
/// certificates required (mutual TLS between nodes).
pub fn serve_args(dir: &Path) -> Vec<String> {
    let path = |f: &str| dir.join(f).display().to_string();
    vec![
        "--tls-cert".into(),
        path("node.pem"),
        "--tls-key".into(),
        path("node-key.pem"),
        "--tls-client-ca".into(),
        path("ca.pem"),
    ]
}

fn read(f: &str) -> Vec<u8> {
    let dir = dir().expect("TLS is on");
    std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
}

/// A gRPC client's TLS: trust the dev CA, present the dev client
/// certificate.
pub fn grpc_client() -> tonic::transport::ClientTlsConfig {
    tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read("ca.pem")))
        .identity(tonic::transport::Identity::from_pem(
            read("client.pem"),
            read("client-key.pem"),
        ))
}

/// A REST client's TLS: trust the dev CA (the REST port asks for no
/// client certificate).
pub fn rest_client() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let pem = read("ca.pem");
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).expect("the dev CA");
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}
