//! A tenant's webhook endpoints: where alerts go, which types, and the
//! secret each delivery is signed with (sealed at rest; a rotated secret
//! keeps signing beside the new one until its overlap ends).
use super::event::AlertType;
use crate::custom::secret::Sealed;
use crate::quota::QuotaError;
use serde::{Deserialize, Serialize};

/// Failed deliveries in a row (each after its whole schedule) after which
/// an endpoint is disabled.
pub const DISABLE_AFTER_DEAD: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// The types it receives; empty: all.
    pub events: Vec<AlertType>,
    pub description: String,
    pub enabled: bool,
    pub secret: Sealed,
    /// The secret before the latest rotation, and until when it still signs.
    pub previous: Option<(Sealed, i64)>,
    pub created_at_ms: i64,
    /// Why it was disabled, when quotad disabled it.
    pub disabled_reason: Option<String>,
    /// Deliveries that died in a row.
    pub dead_in_a_row: u32,
}

impl Endpoint {
    /// A new endpoint from a checked spec, with its sealed secret; its
    /// creation time is set where it is applied.
    pub fn new(id: String, spec: EndpointSpec, secret: Sealed) -> Endpoint {
        Endpoint {
            id,
            url: spec.url,
            events: spec.events,
            description: spec.description,
            enabled: spec.enabled,
            secret,
            previous: None,
            created_at_ms: 0,
            disabled_reason: None,
            dead_in_a_row: 0,
        }
    }

    pub fn wants(&self, kind: AlertType) -> bool {
        self.enabled && (self.events.is_empty() || self.events.contains(&kind))
    }
}

/// What a caller gives for an endpoint (validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub url: String,
    pub events: Vec<AlertType>,
    pub description: String,
    pub enabled: bool,
}

impl EndpointSpec {
    /// Check the parts that need no network: an absolute http(s) URL with
    /// a host and no credentials, known event types, a short description.
    /// Where the host resolves to is checked by the engine.
    pub fn check(
        url: &str,
        events: &[String],
        description: &str,
        enabled: bool,
    ) -> Result<EndpointSpec, QuotaError> {
        if url.len() > 2048 {
            return Err(QuotaError::invalid("url", "must be at most 2048 bytes"));
        }
        let parsed = url::Url::parse(url).map_err(|e| {
            QuotaError::invalid(
                "url",
                format!("{:?} is not a URL: {e}", crate::excerpt::short(url)),
            )
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(QuotaError::invalid(
                "url",
                format!(
                    "must be an https:// (or http://) URL, not {}:",
                    parsed.scheme()
                ),
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(QuotaError::invalid("url", "must name a host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(QuotaError::invalid(
                "url",
                "must not carry a user name or password",
            ));
        }
        let mut kinds = Vec::new();
        for e in events {
            let k = AlertType::parse(e).map_err(|m| QuotaError::invalid("events", m))?;
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        kinds.sort();
        if description.chars().count() > 500 {
            return Err(QuotaError::invalid(
                "description",
                "must be at most 500 characters",
            ));
        }
        Ok(EndpointSpec {
            url: parsed.to_string(),
            events: kinds,
            description: description.to_string(),
            enabled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_their_bad_field() {
        let ok = EndpointSpec::check(
            "https://hooks.acme.test/quotad",
            &["quota.exceeded".into()],
            "",
            true,
        )
        .unwrap();
        assert_eq!(ok.events, [AlertType::QuotaExceeded]);
        for (url, events, field) in [
            ("ftp://x.test/", vec![], "url"),
            ("https://u:p@x.test/", vec![], "url"),
            ("nope", vec![], "url"),
            (
                "https://x.test/",
                vec!["quota.exploded".to_string()],
                "events",
            ),
        ] {
            let e = EndpointSpec::check(url, &events, "", true).unwrap_err();
            assert_eq!(e.field(), Some(field), "{url}");
        }
    }
}
