//! Credentials: bearer tokens ([`jwt`]) for both the control plane and the
//! data plane, tenant API keys ([`api_key`]), and the data plane's
//! [`Authenticator`], which turns a call's credential into a
//! [`crate::model::Caller`].
pub mod api_key;
mod authenticator;
pub mod jwt;

pub use authenticator::{Authenticator, DataPlaneAuth, KEY_RECHECK};
