//! A tenant's alerts, webhook endpoints and outbox, in its replicated
//! state. Every change here happens in `apply`, the same on every replica.
use super::endpoint::{DISABLE_AFTER_DEAD, Endpoint, EndpointSpec};
use super::event::{Alert, AlertType};
use super::outbox::{ATTEMPTS_KEPT, Attempt, Delivery, DeliveryState, Outcome};
use crate::custom::secret::Sealed;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Alerts kept for `GET …/alerts` (the latest).
pub const ALERTS_KEPT: usize = 1000;
/// Finished deliveries kept (delivered or dead), the latest; pending ones
/// are always kept.
pub const FINISHED_KEPT: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantAlerts {
    /// The number of alerts raised so far (the last one's `seq`).
    pub raised: u64,
    /// Deliveries queued so far (the last one's id).
    pub queued: u64,
    pub recent: VecDeque<Alert>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub deliveries: BTreeMap<u64, Delivery>,
    /// Alerts raised once per quota period: the period (its start) each
    /// last fired in, by quota and type.
    pub fired: BTreeMap<(String, AlertType), i64>,
    /// An unpaid bill the platform's billing system reported, while it is.
    pub billing: Option<PaymentTrouble>,
}

/// A payment failure and its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTrouble {
    /// The first failure since the last success.
    pub since_ms: i64,
    pub failures: u32,
    /// When the grace period ends.
    pub grace_until_ms: i64,
    /// Whether the tenant is suspended when it ends.
    pub suspend: bool,
    /// The tenant was suspended for it (a payment reactivates it).
    pub suspended: bool,
}

impl TenantAlerts {
    /// Raise an alert now; queue it for every endpoint that wants it.
    pub fn raise(&mut self, kind: AlertType, at_ms: i64, data: &serde_json::Value) -> &Alert {
        self.raised += 1;
        let alert = Alert {
            seq: self.raised,
            kind,
            at_ms,
            data: data.to_string(),
        };
        let wanted: Vec<String> = self
            .endpoints
            .values()
            .filter(|e| e.wants(kind))
            .map(|e| e.id.clone())
            .collect();
        for endpoint in wanted {
            self.queued += 1;
            self.deliveries.insert(
                self.queued,
                Delivery {
                    id: self.queued,
                    alert: alert.seq,
                    endpoint,
                    state: DeliveryState::Pending,
                    next_at_ms: at_ms,
                    tries: 0,
                    attempts: Vec::new(),
                },
            );
        }
        if self.recent.len() >= ALERTS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(alert);
        self.forget_finished();
        self.recent.back().expect("just pushed")
    }

    /// Register an endpoint, created now.
    pub fn add_endpoint(&mut self, endpoint: &Endpoint, now_ms: i64) {
        let mut e = endpoint.clone();
        e.created_at_ms = now_ms;
        self.endpoints.insert(e.id.clone(), e);
    }

    /// Change an endpoint; enabling a disabled one forgets why it was.
    /// False if there is no such endpoint.
    pub fn update_endpoint(&mut self, id: &str, spec: &EndpointSpec) -> bool {
        let Some(e) = self.endpoints.get_mut(id) else {
            return false;
        };
        e.url = spec.url.clone();
        e.events = spec.events.clone();
        e.description = spec.description.clone();
        if spec.enabled && !e.enabled {
            e.disabled_reason = None;
            e.dead_in_a_row = 0;
        }
        e.enabled = spec.enabled;
        true
    }

    /// Remove an endpoint and its queued deliveries. False if there is
    /// no such endpoint.
    pub fn remove_endpoint(&mut self, id: &str) -> bool {
        if self.endpoints.remove(id).is_none() {
            return false;
        }
        self.deliveries.retain(|_, d| d.endpoint != id);
        true
    }

    /// A new signing secret; the old one also signs until `overlap_until_ms`.
    /// False if there is no such endpoint.
    pub fn rotate_secret(
        &mut self,
        id: &str,
        secret: &Sealed,
        overlap_until_ms: i64,
        now_ms: i64,
    ) -> bool {
        let Some(e) = self.endpoints.get_mut(id) else {
            return false;
        };
        let old = std::mem::replace(&mut e.secret, secret.clone());
        e.previous = (overlap_until_ms > now_ms).then_some((old, overlap_until_ms));
        true
    }

    /// Whether `kind` for `quota` has not fired yet in the period that
    /// started at `period_start_ms`; marks it fired if so.
    pub fn first_in_period(&mut self, quota: &str, kind: AlertType, period_start_ms: i64) -> bool {
        let key = (quota.to_string(), kind);
        if self.fired.get(&key) == Some(&period_start_ms) {
            return false;
        }
        self.fired.insert(key, period_start_ms);
        true
    }

    pub fn alert(&self, seq: u64) -> Option<&Alert> {
        let first = self.recent.front()?.seq;
        self.recent.get(seq.checked_sub(first)? as usize)
    }

    pub fn has_pending(&self) -> bool {
        self.deliveries
            .values()
            .any(|d| d.state == DeliveryState::Pending)
    }

    /// Pending deliveries due by `now_ms`.
    pub fn due(&self, now_ms: i64) -> impl Iterator<Item = &Delivery> {
        self.deliveries
            .values()
            .filter(move |d| d.state == DeliveryState::Pending && d.next_at_ms <= now_ms)
    }

    /// Record an attempt of delivery `id`. A delivery that is no longer
    /// pending (recorded already by an earlier leader) is left as it is.
    /// Returns the endpoint disabled by it, if any.
    pub fn record(&mut self, id: u64, attempt: &Attempt, outcome: Outcome) -> Option<String> {
        let d = self.deliveries.get_mut(&id)?;
        if d.state != DeliveryState::Pending {
            return None;
        }
        d.tries += 1;
        if d.attempts.len() >= ATTEMPTS_KEPT {
            d.attempts.remove(0);
        }
        d.attempts.push(attempt.clone());
        let endpoint = d.endpoint.clone();
        let mut disabled = None;
        match outcome {
            Outcome::Delivered => {
                d.state = DeliveryState::Delivered;
                if let Some(e) = self.endpoints.get_mut(&endpoint) {
                    e.dead_in_a_row = 0;
                }
            }
            Outcome::Retry { next_at_ms } => d.next_at_ms = next_at_ms,
            Outcome::Dead => {
                d.state = DeliveryState::Dead;
                if let Some(e) = self.endpoints.get_mut(&endpoint) {
                    e.dead_in_a_row += 1;
                    if e.enabled && e.dead_in_a_row >= DISABLE_AFTER_DEAD {
                        e.enabled = false;
                        e.disabled_reason = Some(format!(
                            "{} deliveries in a row failed after every retry",
                            e.dead_in_a_row
                        ));
                        disabled = Some(endpoint);
                    }
                }
            }
        }
        self.forget_finished();
        disabled
    }

    /// Queue a finished delivery again, due at `now_ms` (a replay from the
    /// dead-letter list, or of a delivered one). Its message id stays.
    pub fn replay(&mut self, id: u64, now_ms: i64) -> bool {
        match self.deliveries.get_mut(&id) {
            Some(d) if d.state != DeliveryState::Pending => {
                d.state = DeliveryState::Pending;
                d.next_at_ms = now_ms;
                d.tries = 0;
                true
            }
            _ => false,
        }
    }

    fn forget_finished(&mut self) {
        let finished = self
            .deliveries
            .values()
            .filter(|d| d.state != DeliveryState::Pending)
            .count();
        if finished <= FINISHED_KEPT {
            return;
        }
        let oldest: Vec<u64> = self
            .deliveries
            .values()
            .filter(|d| d.state != DeliveryState::Pending)
            .take(finished - FINISHED_KEPT)
            .map(|d| d.id)
            .collect();
        for id in oldest {
            self.deliveries.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::outbox::outcome;

    fn endpoint(id: &str, events: Vec<AlertType>) -> Endpoint {
        Endpoint {
            id: id.into(),
            url: "https://hooks.test/".into(),
            events,
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

    fn attempt(status: Option<u16>) -> Attempt {
        Attempt {
            at_ms: 0,
            status,
            latency_ms: 3,
            error: None,
        }
    }

    #[test]
    fn an_alert_is_queued_for_the_endpoints_that_want_it_and_fires_once_per_period() {
        let mut a = TenantAlerts::default();
        a.endpoints.insert("all".into(), endpoint("all", vec![]));
        a.endpoints.insert(
            "quota".into(),
            endpoint("quota", vec![AlertType::QuotaExceeded]),
        );
        a.raise(
            AlertType::QuotaThresholdReached,
            10,
            &serde_json::json!({"threshold": 80}),
        );
        a.raise(AlertType::QuotaExceeded, 11, &serde_json::json!({}));
        let queued: Vec<(u64, &str)> = a
            .deliveries
            .values()
            .map(|d| (d.alert, d.endpoint.as_str()))
            .collect();
        assert_eq!(queued, [(1, "all"), (2, "all"), (2, "quota")]);
        assert_eq!(a.alert(2).unwrap().kind, AlertType::QuotaExceeded);
        assert!(a.first_in_period("api", AlertType::QuotaExceeded, 100));
        assert!(!a.first_in_period("api", AlertType::QuotaExceeded, 100));
        assert!(
            a.first_in_period("api", AlertType::QuotaExceeded, 200),
            "a new period"
        );
    }

    #[test]
    fn retries_end_delivered_or_dead_and_dead_ones_in_a_row_disable_the_endpoint() {
        let mut a = TenantAlerts::default();
        a.endpoints.insert("e".into(), endpoint("e", vec![]));
        a.raise(AlertType::QuotaExceeded, 0, &serde_json::json!({}));
        let o = outcome(1, Some(500), 0, 0);
        assert_eq!(a.record(1, &attempt(Some(500)), o), None);
        assert_eq!(a.due(1_000).count(), 0, "not due before its retry time");
        assert_eq!(a.due(5_000).count(), 1);
        a.record(1, &attempt(Some(200)), Outcome::Delivered);
        assert_eq!(a.deliveries[&1].state, DeliveryState::Delivered);
        assert_eq!(
            a.record(1, &attempt(Some(500)), Outcome::Dead),
            None,
            "a finished one stays"
        );
        assert_eq!(a.deliveries[&1].tries, 2);
        for n in 0..DISABLE_AFTER_DEAD {
            a.raise(AlertType::QuotaExceeded, 0, &serde_json::json!({}));
            let disabled = a.record(a.queued, &attempt(Some(404)), Outcome::Dead);
            assert_eq!(disabled.is_some(), n + 1 == DISABLE_AFTER_DEAD);
        }
        assert!(!a.endpoints["e"].enabled);
        assert!(a.replay(a.queued, 50));
        assert_eq!(a.due(50).count(), 1);
        assert!(!a.replay(a.queued, 50), "already pending");
    }
}

crate::shared_default!(TenantAlerts);
