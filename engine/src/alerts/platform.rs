//! The operators' alerts, in the meta group: every tenant's alerts raised
//! again here with the tenant named (one endpoint hears the whole
//! platform: a tenant's endpoint disabled, a payment failed, a quota
//! exceeded), the platform's own (one of its endpoints disabled), and the
//! operators' webhook endpoints with their outbox.
//!
//! A tenant's alert is raised in its own group's apply; the leader of
//! that group hands it on here (`PlatformChange::Mirror`). `mirrored`
//! remembers, per tenant, the last alert raised here, so a hand-on that
//! is repeated (a leader died after proposing it, two leaders overlapped)
//! raises nothing twice, and one that is lost is handed on by the next
//! round or the next leader.
use super::endpoint::Endpoint;
use super::event::{Alert, AlertType};
use super::outbox::{Attempt, Outcome};
use super::{EndpointSpec, TenantAlerts};
use crate::custom::secret::Sealed;
use crate::model::TenantId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The most endpoints the platform has.
pub const ENDPOINTS_MAX: usize = 20;
/// Endpoint changes kept for the operators' audit (the latest).
pub const CHANGES_KEPT: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAlerts {
    /// Alerts, endpoints and deliveries, kept as a tenant's are (the
    /// per-period and billing parts stay empty).
    pub feed: TenantAlerts,
    /// Per tenant, the `seq` of its last alert raised here.
    pub mirrored: BTreeMap<TenantId, u64>,
    /// Who changed which endpoint, oldest first.
    pub changes: VecDeque<EndpointRecord>,
}

/// One change to a platform endpoint, for the operators' audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// `webhook.created`, `webhook.updated`, `webhook.deleted`,
    /// `webhook.secret_rotated`, `webhook.delivery_replayed`.
    pub action: String,
    pub endpoint: String,
    pub by: String,
    pub request_id: String,
    pub at_ms: i64,
}

/// `MetaOp::PlatformAlerts`: a change, who made it (`system` for the
/// delivery worker and hand-ons) and the leader's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAlertOp {
    pub change: PlatformChange,
    pub by: String,
    pub request_id: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformChange {
    /// A new endpoint (its secret sealed).
    Add(Box<Endpoint>),
    Update {
        id: String,
        spec: EndpointSpec,
    },
    Remove {
        id: String,
    },
    Rotate {
        id: String,
        secret: Sealed,
        overlap_until_ms: i64,
    },
    /// The delivery worker's attempt and what it means.
    Delivered {
        id: u64,
        attempt: Attempt,
        outcome: Outcome,
    },
    /// Queue a finished delivery again.
    Replay {
        id: u64,
    },
    /// Tenants' alerts, handed on in each tenant's `seq` order.
    Mirror(Vec<Mirrored>),
}

/// A tenant's alert, handed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirrored {
    pub tenant: TenantId,
    pub alert: Alert,
}

impl PlatformAlerts {
    /// The webhook message id of the platform's alert `seq`.
    pub fn message_id(seq: u64) -> String {
        format!("msg_platform_{seq}")
    }

    /// The last of `tenant`'s alerts raised here (0: none).
    pub fn mirrored(&self, tenant: &TenantId) -> u64 {
        self.mirrored.get(tenant).copied().unwrap_or(0)
    }

    /// Apply `op`; false if it changed nothing (an unknown endpoint or
    /// delivery, an alert handed on before, an endpoint over the limit).
    pub fn apply(&mut self, op: &PlatformAlertOp) -> bool {
        let now = op.at_ms;
        let (action, endpoint) = match &op.change {
            PlatformChange::Add(e) => {
                if self.feed.endpoints.len() >= ENDPOINTS_MAX
                    || self.feed.endpoints.contains_key(&e.id)
                {
                    return false;
                }
                self.feed.add_endpoint(e, now);
                ("webhook.created", &e.id)
            }
            PlatformChange::Update { id, spec } => {
                if !self.feed.update_endpoint(id, spec) {
                    return false;
                }
                ("webhook.updated", id)
            }
            PlatformChange::Remove { id } => {
                if !self.feed.remove_endpoint(id) {
                    return false;
                }
                ("webhook.deleted", id)
            }
            PlatformChange::Rotate {
                id,
                secret,
                overlap_until_ms,
            } => {
                if !self.feed.rotate_secret(id, secret, *overlap_until_ms, now) {
                    return false;
                }
                ("webhook.secret_rotated", id)
            }
            PlatformChange::Replay { id } => {
                let Some(endpoint) = self.feed.deliveries.get(id).map(|d| d.endpoint.clone())
                else {
                    return false;
                };
                if !self.feed.replay(*id, now) {
                    return false;
                }
                self.record("webhook.delivery_replayed", &endpoint, op);
                return true;
            }
            PlatformChange::Delivered {
                id,
                attempt,
                outcome,
            } => {
                if let Some(disabled) = self.feed.record(*id, attempt, *outcome) {
                    let url = self.feed.endpoints.get(&disabled).map(|e| e.url.clone());
                    self.feed.raise(
                        AlertType::WebhookEndpointDisabled,
                        now,
                        &serde_json::json!({ "scope": "platform", "endpointId": disabled, "url": url }),
                    );
                }
                return true;
            }
            PlatformChange::Mirror(alerts) => {
                let mut any = false;
                for m in alerts {
                    let last = self.mirrored.entry(m.tenant).or_insert(0);
                    if m.alert.seq <= *last {
                        continue;
                    }
                    *last = m.alert.seq;
                    self.feed
                        .raise(m.alert.kind, m.alert.at_ms, &with_tenant(m));
                    any = true;
                }
                return any;
            }
        };
        let endpoint = endpoint.clone();
        self.record(action, &endpoint, op);
        true
    }

    fn record(&mut self, action: &str, endpoint: &str, op: &PlatformAlertOp) {
        if self.changes.len() >= CHANGES_KEPT {
            self.changes.pop_front();
        }
        self.changes.push_back(EndpointRecord {
            action: action.to_string(),
            endpoint: endpoint.to_string(),
            by: op.by.clone(),
            request_id: op.request_id.clone(),
            at_ms: op.at_ms,
        });
    }
}

/// The tenant's alert's data, naming the tenant (`tenantId`) and its own
/// id there (`tenantAlertId`).
fn with_tenant(m: &Mirrored) -> serde_json::Value {
    let mut data: serde_json::Value =
        serde_json::from_str(&m.alert.data).unwrap_or_else(|_| serde_json::json!({}));
    if !data.is_object() {
        data = serde_json::json!({ "value": data });
    }
    if let Some(o) = data.as_object_mut() {
        o.entry("tenantId")
            .or_insert_with(|| m.tenant.to_string().into());
        o.insert("tenantAlertId".into(), m.alert.seq.into());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::DeliveryState;

    fn endpoint(id: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            url: "https://ops.test/hook".into(),
            events: vec![],
            description: String::new(),
            enabled: true,
            secret: Sealed {
                nonce: [0; 12],
                ciphertext: vec![],
                last4: "abcd".into(),
            },
            previous: None,
            created_at_ms: 0,
            disabled_reason: None,
            dead_in_a_row: 0,
        }
    }

    fn op(change: PlatformChange, at_ms: i64) -> PlatformAlertOp {
        PlatformAlertOp {
            change,
            by: "ops".into(),
            request_id: "r".into(),
            at_ms,
        }
    }

    fn alert(seq: u64, kind: AlertType) -> Alert {
        Alert {
            seq,
            kind,
            at_ms: 1_000 + seq as i64,
            data: "{\"quota\":\"api\"}".into(),
        }
    }

    #[test]
    fn a_tenant_alert_handed_on_twice_is_raised_once_with_the_tenant_named() {
        let mut p = PlatformAlerts::default();
        assert!(p.apply(&op(PlatformChange::Add(Box::new(endpoint("ep"))), 5)));
        let t = uuid::Uuid::from_u128(7);
        let batch = vec![
            Mirrored {
                tenant: t,
                alert: alert(1, AlertType::QuotaExceeded),
            },
            Mirrored {
                tenant: t,
                alert: alert(2, AlertType::PaymentFailed),
            },
        ];
        assert!(p.apply(&op(PlatformChange::Mirror(batch.clone()), 10)));
        assert!(
            !p.apply(&op(PlatformChange::Mirror(batch[1..].to_vec()), 11)),
            "a repeated hand-on raises nothing"
        );
        assert_eq!(p.feed.raised, 2);
        assert_eq!(p.mirrored(&t), 2);
        let first = p.feed.alert(1).unwrap();
        assert_eq!(first.at_ms, 1_001, "the tenant's time");
        let data: serde_json::Value = serde_json::from_str(&first.data).unwrap();
        assert_eq!(data["tenantId"], t.to_string());
        assert_eq!(data["tenantAlertId"], 1);
        assert_eq!(data["quota"], "api");
        assert_eq!(p.feed.deliveries.len(), 2, "one per alert to the endpoint");
        assert_eq!(p.changes.len(), 1, "the endpoint's creation");
        assert_eq!(p.changes[0].action, "webhook.created");
    }

    #[test]
    fn a_platform_endpoint_that_keeps_failing_is_disabled_with_an_alert() {
        let mut p = PlatformAlerts::default();
        p.apply(&op(PlatformChange::Add(Box::new(endpoint("ep"))), 0));
        let t = uuid::Uuid::from_u128(1);
        for seq in 1..=u64::from(crate::alerts::endpoint::DISABLE_AFTER_DEAD) {
            p.apply(&op(
                PlatformChange::Mirror(vec![Mirrored {
                    tenant: t,
                    alert: alert(seq, AlertType::QuotaExceeded),
                }]),
                seq as i64,
            ));
            let attempt = Attempt {
                at_ms: 0,
                status: Some(410),
                latency_ms: 1,
                error: None,
            };
            p.apply(&op(
                PlatformChange::Delivered {
                    id: p.feed.queued,
                    attempt,
                    outcome: Outcome::Dead,
                },
                seq as i64,
            ));
        }
        assert!(!p.feed.endpoints["ep"].enabled);
        let last = p.feed.recent.back().unwrap();
        assert_eq!(last.kind, AlertType::WebhookEndpointDisabled);
        assert!(last.data.contains("\"scope\":\"platform\""));
        assert!(
            p.feed
                .deliveries
                .values()
                .all(|d| d.state == DeliveryState::Dead),
            "nothing queued to the disabled endpoint"
        );
        assert!(p.apply(&op(PlatformChange::Replay { id: 1 }, 99)));
        assert_eq!(
            p.changes.back().unwrap().action,
            "webhook.delivery_replayed"
        );
        assert!(!p.apply(&op(PlatformChange::Remove { id: "nope".into() }, 99)));
    }

    #[test]
    fn the_platform_has_at_most_its_endpoints() {
        let mut p = PlatformAlerts::default();
        for n in 0..ENDPOINTS_MAX {
            assert!(p.apply(&op(
                PlatformChange::Add(Box::new(endpoint(&format!("ep{n}")))),
                0
            )));
        }
        assert!(!p.apply(&op(PlatformChange::Add(Box::new(endpoint("one-more"))), 0)));
    }
}
