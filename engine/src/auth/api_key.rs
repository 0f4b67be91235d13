//! The text of a tenant API key, and how it is made and checked.
//!
//! `qdk_<tenant id, 32 hex>_<key id, 16 hex>_<secret, 64 hex>`: the tenant
//! and key id say where the key's record is without a search; the secret is
//! 256 random bits. Only the SHA-256 of the whole text is stored.
use crate::model::TenantId;
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "qdk_";
const LEN: usize = PREFIX.len() + 32 + 1 + 16 + 1 + 64;

/// A key's text as a caller presented it, parsed (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub tenant: TenantId,
    pub id: String,
    pub hash: [u8; 32],
}

/// Whether `text` looks like an API key at all (rather than a token).
pub fn is_api_key(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// Parse a presented key; `None` if it is not one in form.
pub fn parse(text: &str) -> Option<PresentedKey> {
    if text.len() != LEN || !text.is_ascii() {
        return None;
    }
    let rest = text.strip_prefix(PREFIX)?;
    let (tenant, rest) = rest.split_at(32);
    let rest = rest.strip_prefix('_')?;
    let (id, rest) = rest.split_at(16);
    let secret = rest.strip_prefix('_')?;
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(tenant) || !hex(id) || !hex(secret) {
        return None;
    }
    Some(PresentedKey {
        tenant: TenantId::try_parse(tenant).ok()?,
        id: id.to_string(),
        hash: hash(text),
    })
}

pub fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A new key of `tenant`: its id, its text (shown once) and the text's hash.
pub fn generate(tenant: TenantId) -> (String, String, [u8; 32]) {
    let mut rng = rand::rng();
    let id = format!("{:016x}", rng.next_u64());
    let text = with_new_secret(tenant, &id);
    let h = hash(&text);
    (id, text, h)
}

/// The text of key `id` of `tenant` with a fresh secret (a new key or a
/// rotation).
pub fn with_new_secret(tenant: TenantId, id: &str) -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{}_{id}_{secret}", tenant.simple())
}

/// The last 4 characters, to recognise a key by.
pub fn last4(text: &str) -> String {
    text[text.len().saturating_sub(4)..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_tenant_id_and_hash() {
        let tenant = TenantId::new_v4();
        let (id, text, h) = generate(tenant);
        assert!(is_api_key(&text));
        let p = parse(&text).unwrap();
        assert_eq!((p.tenant, p.id.as_str(), p.hash), (tenant, id.as_str(), h));
        let again = with_new_secret(tenant, &id);
        assert_ne!(again, text);
        assert_ne!(parse(&again).unwrap().hash, h);
        assert_eq!(last4(&text), &text[text.len() - 4..]);
    }

    #[test]
    fn anything_else_is_not_a_key() {
        let tenant = TenantId::new_v4();
        let (_, text, _) = generate(tenant);
        for bad in [
            "",
            "qdk_",
            &text[..text.len() - 1],
            &format!("{text}0"),
            &text.replace("qdk_", "qdx_"),
            &text.to_uppercase(),
            &format!("{}é", &text[..text.len() - 2]),
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
