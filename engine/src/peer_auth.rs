//! Who may use a node's peer port: the cluster's own nodes.
//!
//! Every node of a cluster holds the same 32-byte cluster key (`cluster.key`
//! in its data dir, mode 0600). Each call to a peer carries a credential
//! made from it (`authorization: Bearer qdp_<HMAC-SHA256(key, …)>`); the
//! receiving node compares it with its own in constant time before it
//! decodes anything. The node that founds a cluster makes the key (derived
//! from `--join-token` when one is set, so nodes upgraded from a release
//! without keys agree on it; random otherwise). A joining node presents the
//! join token (`quotad-join-token` metadata) in its `Join` call and receives
//! the key in the answer: the token admits nodes, the key is what they
//! then use, so the token can be changed without touching running nodes.
use hmac::{Hmac, Mac};
use quotad_proto::credential::Bearer;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The cluster key's file in a node's data dir.
pub const KEY_FILE: &str = "cluster.key";

/// Metadata a joining node presents its join token in.
pub const JOIN_TOKEN_HEADER: &str = "quotad-join-token";

/// Shortest join token accepted (a guessable one would admit strangers).
pub const MIN_JOIN_TOKEN_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<secret>)")
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterKey {
    pub fn random() -> ClusterKey {
        let mut k = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut k);
        ClusterKey(k)
    }

    /// The key every node derives from the same join token.
    pub fn from_join_token(token: &str) -> ClusterKey {
        ClusterKey(hmac(token.as_bytes(), b"quotad cluster key v1"))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ClusterKey> {
        bytes.try_into().ok().map(ClusterKey)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The credential peers send: `qdp_` and 64 hex digits.
    pub fn credential(&self) -> String {
        format!("qdp_{}", hex(&hmac(&self.0, b"quotad peer v1")))
    }

    fn parse_file(text: &str) -> Option<ClusterKey> {
        let t = text.trim();
        if t.len() != 64 {
            return None;
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ClusterKey(k))
    }
}

/// Why a peer call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    #[error("this node is still joining its cluster; it serves no peer calls yet")]
    NoKeyYet,
    #[error("the peer port serves only the cluster's nodes: no or a wrong peer credential")]
    NotAPeer,
    #[error("this node admits no joins: start it with --join-token (QUOTAD_JOIN_TOKEN)")]
    NoJoinToken,
    #[error("wrong join token")]
    WrongJoinToken,
}

impl From<PeerRefusal> for tonic::Status {
    fn from(r: PeerRefusal) -> Self {
        match r {
            PeerRefusal::NoKeyYet => tonic::Status::unavailable(r.to_string()),
            PeerRefusal::NotAPeer | PeerRefusal::WrongJoinToken => {
                tonic::Status::unauthenticated(r.to_string())
            }
            PeerRefusal::NoJoinToken => tonic::Status::permission_denied(r.to_string()),
        }
    }
}

struct Held {
    key: ClusterKey,
    /// `Bearer <credential>`, what peers send and what is compared.
    header: MetadataValue<Ascii>,
}

/// A node's cluster key (once it has one) and join token.
#[derive(Default)]
pub struct PeerAuth {
    held: RwLock<Option<Held>>,
    config: RwLock<Config>,
}

#[derive(Default)]
struct Config {
    join_token: Option<String>,
    /// Where the key is kept; `None`: in memory only (tests).
    file: Option<PathBuf>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAuth")
            .field("has_key", &self.key().is_some())
            .field("join_token", &self.join_token().map(|_| "<secret>"))
            .finish()
    }
}

impl PeerAuth {
    /// The node's peer credentials in `data_dir`: its key, if it has one
    /// yet, and the join token it admits nodes with.
    pub fn at(data_dir: &Path, join_token: Option<String>) -> std::io::Result<PeerAuth> {
        let auth = PeerAuth::default();
        auth.configure(data_dir, join_token)?;
        Ok(auth)
    }

    /// Read the key kept in `data_dir` (if any) and admit joins with
    /// `join_token` from now on.
    pub fn configure(&self, data_dir: &Path, join_token: Option<String>) -> std::io::Result<()> {
        let file = data_dir.join(KEY_FILE);
        let key = match std::fs::read_to_string(&file) {
            Ok(text) => Some(ClusterKey::parse_file(&text).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not 64 hex digits", file.display()),
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Ok(mut c) = self.config.write() {
            *c = Config {
                join_token,
                file: Some(file),
            };
        }
        if let Some(k) = key {
            self.hold(k);
        }
        Ok(())
    }

    /// A key held in memory only (nodes of one test process).
    pub fn with_key(key: ClusterKey) -> PeerAuth {
        let auth = PeerAuth::default();
        auth.hold(key);
        auth
    }

    /// No key yet, nothing stored: refuses every peer call until it is
    /// given a key; admits joins with `join_token`.
    pub fn pending_in_memory(join_token: Option<String>) -> PeerAuth {
        let auth = PeerAuth::default();
        if let Ok(mut c) = auth.config.write() {
            c.join_token = join_token;
        }
        auth
    }

    fn hold(&self, key: ClusterKey) {
        let header = format!("Bearer {}", key.credential())
            .parse()
            .expect("hex is ASCII");
        if let Ok(mut h) = self.held.write() {
            *h = Some(Held { key, header });
        }
    }

    pub fn key(&self) -> Option<ClusterKey> {
        self.held.read().ok()?.as_ref().map(|h| h.key.clone())
    }

    pub fn join_token(&self) -> Option<String> {
        self.config.read().ok()?.join_token.clone()
    }

    fn store(&self, key: &ClusterKey) -> std::io::Result<()> {
        let file = self.config.read().ok().and_then(|c| c.file.clone());
        match file {
            Some(file) => {
                crate::storage::private_file::write(&file, hex(key.as_bytes()).as_bytes())
            }
            None => Ok(()),
        }
    }

    /// A founding (or upgraded) node's key: the one it has, else one
    /// derived from its join token, else a random one; stored.
    pub fn found(&self) -> std::io::Result<ClusterKey> {
        if let Some(k) = self.key() {
            return Ok(k);
        }
        let key = match &self.join_token() {
            Some(t) => ClusterKey::from_join_token(t),
            None => ClusterKey::random(),
        };
        self.store(&key)?;
        self.hold(key.clone());
        Ok(key)
    }

    /// The key a joined node received from its cluster; stored.
    pub fn adopt(&self, key: ClusterKey) -> std::io::Result<()> {
        self.store(&key)?;
        self.hold(key);
        Ok(())
    }

    /// Whether a peer call with `metadata` comes from a node of the cluster.
    pub fn check_peer(&self, metadata: &MetadataMap) -> Result<(), PeerRefusal> {
        let held = self.held.read().map_err(|_| PeerRefusal::NoKeyYet)?;
        let held = held.as_ref().ok_or(PeerRefusal::NoKeyYet)?;
        match metadata.get("authorization") {
            Some(v) if constant_time_eq(v.as_bytes(), held.header.as_bytes()) => Ok(()),
            _ => Err(PeerRefusal::NotAPeer),
        }
    }

    /// Whether a `Join` may be served: from a node of the cluster, or from
    /// one presenting the join token.
    pub fn check_join(&self, metadata: &MetadataMap) -> Result<(), PeerRefusal> {
        if self.check_peer(metadata).is_ok() {
            return Ok(());
        }
        let token = self.join_token().ok_or(PeerRefusal::NoJoinToken)?;
        match metadata.get(JOIN_TOKEN_HEADER) {
            Some(v) if constant_time_eq(v.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(PeerRefusal::WrongJoinToken),
        }
    }

    /// The credential this node sends to peers (none before it has a key).
    pub fn outgoing(self: &Arc<Self>) -> PeerCredential {
        PeerCredential(self.clone())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Adds this node's peer credential to each call it makes to a peer.
#[derive(Clone)]
pub struct PeerCredential(Arc<PeerAuth>);

impl Interceptor for PeerCredential {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Ok(held) = self.0.held.read()
            && let Some(h) = held.as_ref()
        {
            req.metadata_mut().insert("authorization", h.header.clone());
        }
        Ok(req)
    }
}

/// A connection to a peer whose calls carry this node's credential.
pub type PeerChannel = InterceptedService<Channel, PeerCredential>;

/// `Bearer` for a client outside the cluster that holds the key (an
/// operator's tool, a test).
pub fn bearer(key: &ClusterKey) -> Bearer {
    Bearer::new(&key.credential()).expect("hex is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn only_the_cluster_key_opens_the_peer_port_and_only_the_token_admits_joins() {
        let key = ClusterKey::random();
        let auth = PeerAuth::with_key(key.clone());
        let good = format!("Bearer {}", key.credential());
        assert_eq!(auth.check_peer(&meta(&[("authorization", &good)])), Ok(()));
        let other = format!("Bearer {}", ClusterKey::random().credential());
        for m in [
            meta(&[]),
            meta(&[("authorization", &other)]),
            meta(&[("authorization", "Bearer x")]),
        ] {
            assert_eq!(auth.check_peer(&m), Err(PeerRefusal::NotAPeer));
        }
        assert_eq!(
            auth.check_join(&meta(&[(JOIN_TOKEN_HEADER, "x")])),
            Err(PeerRefusal::NoJoinToken)
        );
        let pending = PeerAuth::pending_in_memory(Some("a-long-join-token-1".into()));
        assert_eq!(
            pending.check_peer(&meta(&[("authorization", &good)])),
            Err(PeerRefusal::NoKeyYet)
        );
        assert_eq!(
            pending.check_join(&meta(&[(JOIN_TOKEN_HEADER, "a-long-join-token-1")])),
            Ok(())
        );
        assert_eq!(
            pending.check_join(&meta(&[(JOIN_TOKEN_HEADER, "a-long-join-token-2")])),
            Err(PeerRefusal::WrongJoinToken)
        );
    }

    #[test]
    fn a_key_is_kept_in_the_data_dir_and_the_same_token_derives_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let auth = PeerAuth::at(dir.path(), Some("a-long-join-token-1".into())).unwrap();
        assert!(auth.key().is_none());
        let key = auth.found().unwrap();
        assert_eq!(key, ClusterKey::from_join_token("a-long-join-token-1"));
        let again = PeerAuth::at(dir.path(), None).unwrap();
        assert_eq!(again.key(), Some(key));
        let other = tempfile::tempdir().unwrap();
        let random = PeerAuth::at(other.path(), None).unwrap().found().unwrap();
        assert_ne!(random, ClusterKey::from_join_token("a-long-join-token-1"));
        std::fs::write(other.path().join(KEY_FILE), "nonsense").unwrap();
        assert!(PeerAuth::at(other.path(), None).is_err());
    }
}
