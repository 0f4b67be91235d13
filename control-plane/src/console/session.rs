//! The console's session: a cookie that any node of the deployment can
//! check on its own, and the CSRF tokens bound to it.
//!
//! The cookie is `v1.<payload>.<mac>`: the payload is the session's JSON
//! (base64url), the MAC an HMAC-SHA256 over `v1.<payload>` with a key
//! derived from the deployment's JWT secret. Every node of a cluster shares
//! that secret, so a session made on one node is accepted by the others;
//! another deployment (another secret) cannot make one this one accepts.
//! The session carries its own expiry; signing out records its id in the
//! replicated state until then (`Engine::sign_out_session`).
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use quotad_engine::model::SessionId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub const COOKIE: &str = "quotad_session";
/// A random value the sign-in form repeats (double-submit CSRF token for
/// the one form posted before there is a session).
pub const SIGNIN_COOKIE: &str = "quotad_signin";
const VERSION: &str = "v1";

/// The signed content of a session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// 16 random bytes, hex: what a sign-out records.
    pub id: String,
    /// Who signed in: the token's `sub`, or `api-key:<id>`.
    pub sub: String,
    /// The token's roles (none for an API key).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The one tenant the credential is for: the token's `tenant_id`, or
    /// the API key's tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The API key's id, when signed in with one: checked again on every
    /// request, so revoking the key ends the session.
    #[serde(default)]
    pub key: Option<String>,
    /// Signed in through the tenant's SSO issuer: the role its claims
    /// mapped to (the tenant is `tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_role: Option<String>,
    /// Signed in at, and expires at (ms since the epoch).
    pub iat: i64,
    pub exp: i64,
}

impl Session {
    pub fn session_id(&self) -> Option<SessionId> {
        let mut id = [0u8; 16];
        let bytes = self.id.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).ok()?;
            id[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(id)
    }

    pub fn new_id() -> String {
        let id: [u8; 16] = rand::random();
        hex(&id)
    }
}

/// Why a cookie does not open a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session cookie is malformed")]
    Malformed,
    #[error("the session cookie's signature is not valid here")]
    BadSignature,
    #[error("the session has expired")]
    Expired,
    #[error("the session was signed out")]
    SignedOut,
    #[error("the API key the session was opened with is no longer valid")]
    KeyGone,
}

/// The key that signs sessions and CSRF tokens.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<secret>)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SessionKey {
    /// Derived from the deployment's JWT secret, so that it is never the
    /// secret itself (a session MAC is not a token signature).
    pub fn derive(jwt_secret: &[u8]) -> SessionKey {
        let mut mac = HmacSha256::new_from_slice(jwt_secret).expect("HMAC takes any key length");
        mac.update(b"quotad console session key v1");
        SessionKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// The cookie value for `session`.
    pub fn seal(&self, session: &Session) -> String {
        let payload = B64.encode(serde_json::to_vec(session).expect("a session serializes"));
        let signed = format!("{VERSION}.{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let tag = B64.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// The session a cookie value carries, if this deployment signed it.
    /// Expiry and sign-out are the caller's to check (they need the clock
    /// and the replicated state).
    pub fn open(&self, cookie: &str) -> Result<Session, SessionError> {
        let (signed, tag) = cookie.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(SessionError::Malformed)?;
        if version != VERSION {
            return Err(SessionError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| SessionError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| SessionError::BadSignature)?;
        let json = B64.decode(payload).map_err(|_| SessionError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| SessionError::Malformed)
    }

    /// The CSRF token of the session `id`: every form of the session
    /// carries it, and a post without it is refused.
    pub fn csrf(&self, id: &str) -> String {
        let mut mac = self.mac();
        mac.update(b"csrf.");
        mac.update(id.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// A tag binding `text` to this deployment for `purpose` (the SSO
    /// sign-in's state).
    pub fn tag(&self, purpose: &str, text: &str) -> String {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(b".");
        mac.update(text.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `presented` is [`SessionKey::tag`] of `text` (constant time).
    pub fn tag_ok(&self, purpose: &str, text: &str, presented: &str) -> bool {
        let Ok(tag) = B64.decode(presented) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(b".");
        mac.update(text.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    /// Whether `presented` is the CSRF token of session `id` (compared in
    /// constant time).
    pub fn csrf_ok(&self, id: &str, presented: &str) -> bool {
        let Ok(tag) = B64.decode(presented) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(b"csrf.");
        mac.update(id.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to the console,
/// Secure when the node serves TLS. `max_age_secs` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age_secs.max(0)
    )
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            id: Session::new_id(),
            sub: "alice".into(),
            roles: vec!["operator".into()],
            tenant: None,
            key: None,
            sso_role: None,
            iat: 1,
            exp: 2,
        }
    }

    #[test]
    fn a_sealed_session_opens_with_its_key_only() {
        let key = SessionKey::derive(b"0123456789abcdef0123456789abcdef");
        let s = session();
        let cookie = key.seal(&s);
        assert_eq!(key.open(&cookie), Ok(s.clone()));
        assert!(s.session_id().is_some());
        let other = SessionKey::derive(b"another deployment's secret....");
        assert_eq!(other.open(&cookie), Err(SessionError::BadSignature));
    }

    #[test]
    fn a_changed_payload_or_tag_is_refused() {
        let key = SessionKey::derive(b"0123456789abcdef0123456789abcdef");
        let cookie = key.seal(&session());
        let (signed, tag) = cookie.rsplit_once('.').unwrap();
        let mut forged = session();
        forged.sub = "mallory".into();
        let forged_payload = B64.encode(serde_json::to_vec(&forged).unwrap());
        let swapped = format!("v1.{forged_payload}.{tag}");
        assert_eq!(key.open(&swapped), Err(SessionError::BadSignature));
        let bad_tag = format!("{signed}.AAAA");
        assert_eq!(key.open(&bad_tag), Err(SessionError::BadSignature));
        assert_eq!(key.open("garbage"), Err(SessionError::Malformed));
        assert_eq!(
            key.open(&cookie.replacen("v1", "v2", 1)),
            Err(SessionError::Malformed)
        );
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session() {
        let key = SessionKey::derive(b"0123456789abcdef0123456789abcdef");
        let token = key.csrf("aa");
        assert!(key.csrf_ok("aa", &token));
        assert!(!key.csrf_ok("bb", &token));
        assert!(!key.csrf_ok("aa", ""));
        assert!(!key.csrf_ok("aa", "not base64!"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "a=1; quotad_session=v1.x.y; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("v1.x.y"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(set_cookie(COOKIE, "v", 60, true).ends_with("Max-Age=60; Secure"));
    }
}
