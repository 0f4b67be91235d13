//! Where the JWT secret comes from: `JWT_SECRET`, or a secret the node
//! generates once into its data dir (so a fresh node needs no set-up, and
//! `quotad token --data-dir` can mint tokens for it).
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

pub const ENV: &str = "JWT_SECRET";
const FILE: &str = "jwt-secret";

pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The configured secret, or the data dir's (created if `create`).
pub fn resolve(data_dir: &Path, create: bool) -> anyhow::Result<Vec<u8>> {
    if let Ok(s) = std::env::var(ENV)
        && !s.is_empty()
    {
        return Ok(s.into_bytes());
    }
    let path = file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating data dir {}", data_dir.display()))?;
            let secret: String = (0..32)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            write_private(&path, &secret)?;
            tracing::info!(path = %path.display(), "no {ENV} given: generated a JWT secret; mint tokens with `quotad token --data-dir`");
            Ok(secret.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no {ENV} set and no secret in {} (start the node once, or set {ENV})",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// `3600`, `90s`, `30m`, `12h`, `7d` -> seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration (e.g. 3600, 30m, 12h, 7d)"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{s:?}: unknown unit {unit:?} (use s, m, h or d)"),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
