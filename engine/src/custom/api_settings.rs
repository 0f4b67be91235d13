//! A tenant's API settings: the networks its API keys may be used from
//! (CIDRs; none listed: anywhere), and the browser origins allowed to call
//! its API (CORS).
use crate::quota::QuotaError;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Most entries of each list.
pub const MAX_ENTRIES: usize = 100;

/// A network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub fn parse(raw: &str) -> Result<Cidr, String> {
        let bad = || {
            format!(
                "{:?} is not an address or a network like 10.0.0.0/8",
                crate::excerpt::short(raw)
            )
        };
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!(
                "{raw:?} has bits set beyond its /{prefix} prefix: the network is {}",
                Cidr {
                    addr: cidr.network(),
                    prefix
                }
            ));
        }
        Ok(cidr)
    }

    fn bits(ip: IpAddr) -> (u128, u8) {
        match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    fn mask(&self, width: u8) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            (!0u128 << (width - self.prefix))
                & (if width == 128 {
                    !0
                } else {
                    (1u128 << width) - 1
                })
        }
    }

    fn network(&self) -> IpAddr {
        let (bits, width) = Cidr::bits(self.addr);
        let net = bits & self.mask(width);
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4((net as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(net.into()),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket is its IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, wa) = Cidr::bits(self.addr);
        let (b, wb) = Cidr::bits(ip);
        wa == wb && (a & self.mask(wa)) == (b & self.mask(wa))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSettings {
    /// Where the tenant's API keys may be used from; empty: anywhere.
    pub ip_allowlist: Vec<Cidr>,
    /// Browser origins (`https://app.example.com`) allowed to call the
    /// tenant's API.
    pub cors_origins: Vec<String>,
}

impl ApiSettings {
    /// Validate the lists as a caller gave them; errors name the field.
    pub fn check(
        ip_allowlist: &[String],
        cors_origins: &[String],
    ) -> Result<ApiSettings, QuotaError> {
        if ip_allowlist.len() > MAX_ENTRIES {
            return Err(QuotaError::invalid(
                "ipAllowlist",
                format!("at most {MAX_ENTRIES} entries"),
            ));
        }
        if cors_origins.len() > MAX_ENTRIES {
            return Err(QuotaError::invalid(
                "corsOrigins",
                format!("at most {MAX_ENTRIES} entries"),
            ));
        }
        let mut nets = Vec::new();
        for raw in ip_allowlist {
            let c = Cidr::parse(raw).map_err(|e| QuotaError::invalid("ipAllowlist", e))?;
            if !nets.contains(&c) {
                nets.push(c);
            }
        }
        let mut origins = Vec::new();
        for raw in cors_origins {
            let o = origin(raw).map_err(|e| QuotaError::invalid("corsOrigins", e))?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        Ok(ApiSettings {
            ip_allowlist: nets,
            cors_origins: origins,
        })
    }

    /// Whether a key may be used from `ip` (`None`: not known, refused
    /// when there is a list).
    pub fn admits(&self, ip: Option<IpAddr>) -> bool {
        self.ip_allowlist.is_empty()
            || ip.is_some_and(|ip| self.ip_allowlist.iter().any(|c| c.contains(ip)))
    }
}

/// An origin as browsers send it: scheme, host and port (when not the
/// scheme's default), nothing else.
fn origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw)
        .map_err(|e| format!("{:?} is not an origin: {e}", crate::excerpt::short(raw)))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!(
            "{:?} is not an http(s) origin",
            crate::excerpt::short(raw)
        ));
    }
    let o = url.origin().ascii_serialization();
    if raw.trim_end_matches('/') != o {
        return Err(format!(
            "{:?} is not an origin: write scheme, host and port only, like {o}",
            crate::excerpt::short(raw)
        ));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "an IPv4-mapped client");
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "10.1.2.3/16", "nope", "10.0.0.0/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Cidr::parse("10.1.2.3/16")
                .unwrap_err()
                .contains("10.1.0.0/16")
        );
    }

    #[test]
    fn settings_name_their_bad_field_and_an_empty_list_admits_all() {
        let s = ApiSettings::check(
            &["10.0.0.0/8".into()],
            &[
                "https://app.acme.test".into(),
                "http://localhost:3000/".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            s.cors_origins,
            ["https://app.acme.test", "http://localhost:3000"]
        );
        assert!(
            s.admits(Some(ip("10.9.9.9"))) && !s.admits(Some(ip("11.0.0.1"))) && !s.admits(None)
        );
        assert!(ApiSettings::default().admits(None));
        let e = ApiSettings::check(&["10.0.0.0/99".into()], &[]).unwrap_err();
        assert_eq!(e.field(), Some("ipAllowlist"));
        for bad in [
            "https://app.acme.test/path",
            "ftp://x.test",
            "app.acme.test",
        ] {
            let e = ApiSettings::check(&[], &[bad.into()]).unwrap_err();
            assert_eq!(e.field(), Some("corsOrigins"), "{bad}");
        }
    }
}
