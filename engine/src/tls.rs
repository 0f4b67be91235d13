//! TLS (rustls, ring) for a node's ports: a server side that reloads its
//! certificate, key and client CA when their files change, so a renewed
//! certificate is served without a restart, and the client side nodes use
//! to reach each other.
//!
//! Handshakes run on their own tasks with a deadline: a client that opens
//! a connection and never finishes its handshake holds neither the accept
//! loop nor anyone else's connection.
use crate::idle::Idle;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often certificate files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way at once per port; past it, new connections wait
/// for the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;

/// Handshakes that failed (bad certificate, plaintext, timeout), by port.
pub const HANDSHAKE_FAILURES: &str = "quotad_tls_handshake_failures_total";

/// The files a node serves TLS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the node's certificate first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate
    /// signed by one (mutual TLS), and nodes trust each other through it.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

/// A root store of the CA certificates in a PEM file.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(roots)
}

impl TlsFiles {
    /// A server configuration from the files as they are now, offering
    /// `alpn` protocols.
    fn server_config(&self, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
        let certs = read_certs(&self.cert)?;
        let key = read_key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(read_roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| file_error(ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| file_error(&self.key, format!("does not match the certificate: {e}")))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// When each file last changed, to notice a replacement.
    fn stamp(&self) -> Stamp {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }

    /// The client side of a connection to a peer: trusts the client CA
    /// (the cluster's CA) and presents this node's certificate.
    pub fn peer_client(&self) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
        let ca = self.client_ca.as_ref().ok_or_else(|| {
            TlsError::Config(
                "nodes of a cluster reach each other over mutual TLS: --tls-client-ca (the \
                 cluster's CA) is required"
                    .into(),
            )
        })?;
        let read = |p: &Path| std::fs::read(p).map_err(|e| file_error(p, e));
        Ok(tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?))
            .identity(tonic::transport::Identity::from_pem(
                read(&self.cert)?,
                read(&self.key)?,
            )))
    }
}

/// Each file's modification time and length (`None`: unreadable).
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// A port's TLS server side, reloaded when its files change.
pub struct ServerTls {
    files: TlsFiles,
    alpn: Vec<&'static [u8]>,
    current: RwLock<(TlsAcceptor, Stamp)>,
    port: &'static str,
}

impl ServerTls {
    /// Load `files` (an error names the file that is wrong); `port` names
    /// the port in logs and metrics.
    pub fn load(
        files: TlsFiles,
        alpn: &[&'static [u8]],
        port: &'static str,
    ) -> Result<Arc<ServerTls>, TlsError> {
        let stamp = files.stamp();
        let config = files.server_config(alpn)?;
        metrics::counter!(HANDSHAKE_FAILURES, "port" => port).increment(0);
        Ok(Arc::new(ServerTls {
            files,
            alpn: alpn.to_vec(),
            current: RwLock::new((TlsAcceptor::from(Arc::new(config)), stamp)),
            port,
        }))
    }

    fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .map(|c| c.0.clone())
            .expect("the TLS acceptor lock is never poisoned")
    }

    /// Reload the files if they changed since last time; a configuration
    /// that does not load (a half-written file) keeps the old one.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = self.files.stamp();
        if self.current.read().map(|c| c.1 == stamp).unwrap_or(false) {
            return Ok(false);
        }
        let config = self.files.server_config(&self.alpn)?;
        if let Ok(mut c) = self.current.write() {
            *c = (TlsAcceptor::from(Arc::new(config)), stamp);
        }
        tracing::info!(port = self.port, cert = %self.files.cert.display(), "TLS certificate reloaded");
        Ok(true)
    }

    /// Check the files every [`RELOAD_EVERY`] for as long as the node runs.
    pub fn spawn_reload(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RELOAD_EVERY);
            loop {
                every.tick().await;
                let Some(tls) = this.upgrade() else { return };
                if let Err(e) = tls.reload_if_changed() {
                    tracing::warn!(port = tls.port, error = %e, "TLS files changed but do not load; serving the previous ones");
                }
            }
        });
    }

    /// Accept connections on `listener` and hand over those whose
    /// handshake completed, with the client's address.
    pub fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
        idle: Duration,
    ) -> tokio::sync::mpsc::Receiver<(TlsStream<Idle<TcpStream>>, std::net::SocketAddr)> {
        let (tx, rx) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
        let this = self.clone();
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let (stream, addr) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let _ = stream.set_nodelay(true);
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let (acceptor, tx, port) = (this.acceptor(), tx.clone(), this.port);
                tokio::spawn(async move {
                    let stream = Idle::new(stream, idle);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            drop(permit);
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            metrics::counter!(HANDSHAKE_FAILURES, "port" => port).increment(1);
                            tracing::debug!(%addr, port, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            metrics::counter!(HANDSHAKE_FAILURES, "port" => port).increment(1);
                            tracing::debug!(%addr, port, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        rx
    }
}

/// Whether `addr` is reachable only from this host.
pub fn is_loopback(addr: &std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}
