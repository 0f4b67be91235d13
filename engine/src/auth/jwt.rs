//! Bearer tokens (JWT), as both the control plane and the data plane read
//! them: HS256 (a shared secret) or RS256 (a public key), with claims `sub`
//! (who), `tenant_id` (optional: the one tenant the token is for), `roles`
//! and `exp`. Anything wrong with a token (bad signature, `alg: none`, an
//! algorithm not configured, expired, a claim missing) is refused with a
//! message saying what.
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The platform operator role: every tenant, every action.
pub const OPERATOR: &str = "operator";

/// The platform service role: the data plane for every tenant.
pub const SERVICE: &str = "service";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub roles: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Keys that verify tokens. The secret is kept out of `Debug`.
#[derive(Clone, Default)]
pub struct JwtKeys {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("hs256", &self.hs256.as_ref().map(|_| "<secret>"))
            .field("rs256", &self.rs256.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the JWT secret must be at least 16 bytes")]
    WeakSecret,
    #[error("the RS256 public key is not a PEM RSA public key: {0}")]
    BadPublicKey(jsonwebtoken::errors::Error),
    #[error("cannot sign a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

impl JwtKeys {
    pub fn hs256(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < 16 {
            return Err(AuthError::WeakSecret);
        }
        Ok(JwtKeys {
            hs256: Some(DecodingKey::from_secret(secret)),
            rs256: None,
        })
    }

    pub fn with_rs256_pem(mut self, pem: &[u8]) -> Result<Self, AuthError> {
        self.rs256 = Some(DecodingKey::from_rsa_pem(pem).map_err(AuthError::BadPublicKey)?);
        Ok(self)
    }

    /// Verify a token; the error says what was wrong (for the 401 message).
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| format!("tokens signed with {:?} are not accepted", header.alg))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token has expired".to_string(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                "token signature is invalid".to_string()
            }
            _ => format!("invalid token: {e}"),
        })?;
        if data.claims.sub.is_empty() {
            return Err("token has an empty sub".into());
        }
        Ok(data.claims)
    }
}

/// Sign an HS256 token (`quotad token`, tests).
pub fn mint(secret: &[u8], claims: &Claims) -> Result<String, AuthError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(AuthError::Sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp_from_now: i64) -> Claims {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        Claims {
            sub: "alice".into(),
            tenant_id: None,
            roles: vec!["admin".into()],
            exp: (now + exp_from_now) as u64,
            iat: None,
        }
    }

    #[test]
    fn good_tokens_pass_and_bad_ones_say_why() {
        let auth = JwtKeys::hs256(SECRET).unwrap();
        let good = mint(SECRET, &claims(600)).unwrap();
        assert_eq!(auth.verify(&good).unwrap().sub, "alice");

        let expired = mint(SECRET, &claims(-600)).unwrap();
        assert!(auth.verify(&expired).unwrap_err().contains("expired"));

        let other = mint(b"another-secret-of-32-bytes-long!", &claims(600)).unwrap();
        assert!(auth.verify(&other).unwrap_err().contains("signature"));

        // alg: none, unsigned.
        let header = base64url(r#"{"alg":"none","typ":"JWT"}"#);
        let body = base64url(&serde_json::to_string(&claims(600)).unwrap());
        assert!(auth.verify(&format!("{header}.{body}.")).is_err());

        // A claim missing (roles).
        let body = base64url(r#"{"sub":"alice","exp":99999999999}"#);
        let sig_input = format!("{}.{body}", base64url(r#"{"alg":"HS256","typ":"JWT"}"#));
        let unsigned = jsonwebtoken::crypto::sign(
            sig_input.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        assert!(
            auth.verify(&format!("{sig_input}.{unsigned}"))
                .unwrap_err()
                .contains("invalid token")
        );

        assert!(JwtKeys::hs256(b"short").is_err());
    }

    #[test]
    fn rs256_tokens_verify_with_the_configured_public_key_only() {
        // A key pair made for this test only (control-plane/tests/fixtures).
        let private = include_bytes!("../../tests/fixtures/rs256-test-private.pem");
        let public = include_bytes!("../../tests/fixtures/rs256-test-public.pem");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims(600),
            &EncodingKey::from_rsa_pem(private).unwrap(),
        )
        .unwrap();
        let hs_only = JwtKeys::hs256(SECRET).unwrap();
        assert!(hs_only.verify(&token).unwrap_err().contains("not accepted"));
        let both = JwtKeys::hs256(SECRET)
            .unwrap()
            .with_rs256_pem(public)
            .unwrap();
        assert_eq!(both.verify(&token).unwrap().sub, "alice");
        // An HS256 token signed with the public key's bytes (key confusion) fails.
        let confused = mint(public, &claims(600)).unwrap();
        assert!(both.verify(&confused).is_err());
        assert!(JwtKeys::default().with_rs256_pem(b"not a key").is_err());
    }

    fn base64url(s: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
