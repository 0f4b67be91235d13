//! Secrets at rest (webhook signing secrets, SSO client secrets): sealed
//! with ChaCha20-Poly1305 under the deployment's secrets key before they
//! enter a Raft entry, so the log, snapshots and archive hold ciphertext
//! only. Reads show the last four characters, never more.
//!
//! The key is `QUOTAD_SECRET_KEY` (64 hex digits, the same on every node),
//! or else derived from the cluster key in the data dir (`cluster.key`,
//! which every node of a cluster shares): any node may lead a group and
//! must open what another sealed. Each secret is bound to where it lives
//! (the associated data names its tenant and endpoint), so a ciphertext
//! copied elsewhere does not open.
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Clone)]
pub struct SecretsKey([u8; 32]);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(<secret>)")
    }
}

/// A secret as stored: nonce, ciphertext (with its tag), last four
/// characters of the plaintext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
    pub last4: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed(…{})", self.last4)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("QUOTAD_SECRET_KEY must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error(
        "a sealed secret does not open with this node's secrets key (QUOTAD_SECRET_KEY differs between nodes?)"
    )]
    DoesNotOpen,
    #[error("this node has no secrets key yet (it is still joining its cluster)")]
    NoKey,
}

impl SecretsKey {
    /// From `QUOTAD_SECRET_KEY`'s text.
    pub fn parse(text: &str) -> Result<SecretsKey, SecretError> {
        let t = text.trim();
        if t.len() != 64 {
            return Err(SecretError::BadKey);
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(t.get(2 * i..2 * i + 2).ok_or(SecretError::BadKey)?, 16)
                .map_err(|_| SecretError::BadKey)?;
        }
        Ok(SecretsKey(k))
    }

    /// Derived from the cluster key (a key of its own, not the key itself).
    pub fn from_cluster_key(cluster: &[u8; 32]) -> SecretsKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(cluster).expect("any key length");
        mac.update(b"quotad secrets v1");
        SecretsKey(mac.finalize().into_bytes().into())
    }

    /// Seal `plaintext` for the place named by `context`.
    pub fn seal(&self, context: &str, plaintext: &str) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let ciphertext = ChaCha20Poly1305::new((&self.0).into())
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 seals any message of this size");
        let chars: Vec<char> = plaintext.chars().collect();
        Sealed {
            nonce,
            ciphertext,
            last4: chars[chars.len().saturating_sub(4)..].iter().collect(),
        }
    }

    pub fn open(&self, context: &str, s: &Sealed) -> Result<String, SecretError> {
        let plain = ChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                (&s.nonce).into(),
                Payload {
                    msg: &s.ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::DoesNotOpen)?;
        String::from_utf8(plain).map_err(|_| SecretError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_in_its_place() {
        let k = SecretsKey::from_cluster_key(&[7; 32]);
        let s = k.seal("webhook:t1:ep1", "whsec_abcdefgh");
        assert_eq!(s.last4, "efgh");
        assert!(
            !s.ciphertext.windows(6).any(|w| w == b"whsec_"),
            "ciphertext, not the text"
        );
        assert_eq!(k.open("webhook:t1:ep1", &s).unwrap(), "whsec_abcdefgh");
        assert_eq!(k.open("webhook:t2:ep1", &s), Err(SecretError::DoesNotOpen));
        let other = SecretsKey::from_cluster_key(&[8; 32]);
        assert_eq!(
            other.open("webhook:t1:ep1", &s),
            Err(SecretError::DoesNotOpen)
        );
        assert_eq!(format!("{s:?}"), "Sealed(…efgh)");
        assert!(SecretsKey::parse(&"ab".repeat(32)).is_ok());
        assert!(SecretsKey::parse("short").is_err());
    }
}
