//! `quotad token`: mint an HS256 token for local use.
use super::secret;
use crate::cli::out::outln;
use clap::Args;
use quotad_control_plane::auth::{Claims, mint};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    sub: String,
    /// Scope the token to one tenant (`tenant_id`).
    #[arg(long)]
    tenant: Option<String>,
    /// A role to put in `roles` (repeat): operator, service (the data plane
    /// for every tenant), owner, admin, member, viewer.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Lifetime: seconds, or 30m, 12h, 7d.
    #[arg(long, env = "JWT_EXPIRATION", default_value = "1h")]
    expires: String,
    /// Data dir whose generated secret to use when JWT_SECRET is not set.
    #[arg(long, env = "QUOTAD_DATA_DIR", default_value = "./quotad-data")]
    data_dir: PathBuf,
}

pub fn run(a: TokenArgs) -> anyhow::Result<()> {
    let secret = secret::resolve(&a.data_dir, false)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = Claims {
        sub: a.sub,
        tenant_id: a.tenant,
        roles: a.roles,
        exp: now + secret::parse_duration(&a.expires)?,
        iat: Some(now),
    };
    outln!("{}", mint(&secret, &claims)?)?;
    Ok(())
}
