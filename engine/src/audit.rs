//! The audit log: one hash chain per tenant. Every event carries the hash
//! of the one before it, and its own hash covers its content and that link,
//! so editing, removing or reordering an event breaks the chain from there
//! on. Events are appended by the state machine from committed entries
//! (deterministically: time and actor come from the entry).
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A page of an audit chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub more: bool,
    /// Where the whole chain fails to verify, if it does.
    pub chain: Result<(), ChainBreak>,
    pub total: usize,
}

impl Default for AuditPage {
    fn default() -> Self {
        AuditPage {
            events: Vec::new(),
            more: false,
            chain: Ok(()),
            total: 0,
        }
    }
}

/// Who did something, and as part of which request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditMeta {
    /// User id (`sub`), or `system`.
    pub actor: String,
    pub request_id: String,
}

impl AuditMeta {
    pub fn new(actor: impl Into<String>, request_id: impl Into<String>) -> Self {
        AuditMeta {
            actor: actor.into(),
            request_id: request_id.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// 1, 2, 3, … per tenant.
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub request_id: String,
    /// e.g. `tenant.created`, `quota.updated`, `member.added`, `access.denied`.
    pub action: String,
    /// What the action was about (a quota name, a user id), if anything.
    pub target: String,
    /// JSON of the state before and after ("" when there is none).
    pub before: String,
    pub after: String,
    /// Hex SHA-256 of the previous event ("" for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this event's fields and `prev_hash`.
    pub hash: String,
}

impl AuditEvent {
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        // Length-prefixed fields: no two different events hash alike by
        // shifting text between fields.
        for field in [
            self.seq.to_string().as_str(),
            &self.at_ms.to_string(),
            &self.actor,
            &self.request_id,
            &self.action,
            &self.target,
            &self.before,
            &self.after,
            &self.prev_hash,
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A new event's content; the chain adds sequence and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
}

/// A tenant's chain. Each event is kept encoded (postcard) in one
/// allocation: chains are read rarely, and as ten separate strings an idle
/// tenant's creation event was its largest part in memory (about 1.2 KB,
/// against about 0.4 KB encoded). Serialized as the list of events, as it
/// always was, so stored snapshots read unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditLog {
    events: Vec<Box<[u8]>>,
}

fn encode(event: &AuditEvent) -> Box<[u8]> {
    postcard::to_allocvec(event)
        .expect("an audit event always encodes")
        .into_boxed_slice()
}

fn decode(bytes: &[u8]) -> AuditEvent {
    postcard::from_bytes(bytes).expect("audit events are encoded by AuditLog")
}

/// The serialized form: `{ events: [AuditEvent] }`.
#[derive(Serialize)]
struct WireRef<'a> {
    events: EventsRef<'a>,
}

struct EventsRef<'a>(&'a [Box<[u8]>]);

impl Serialize for EventsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|e| decode(e)))
    }
}

#[derive(Deserialize)]
struct Wire {
    events: Vec<AuditEvent>,
}

impl Serialize for AuditLog {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRef {
            events: EventsRef(&self.events),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for AuditLog {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        Ok(AuditLog {
            events: wire.events.iter().map(encode).collect(),
        })
    }
}

/// Where a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub seq: u64,
    pub reason: String,
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Events after this sequence number (paging).
    pub after_seq: u64,
    pub limit: usize,
}

impl AuditLog {
    pub fn append(&mut self, meta: &AuditMeta, at_ms: i64, entry: AuditEntry) -> AuditEvent {
        let prev_hash = self
            .events
            .last()
            .map(|e| decode(e).hash)
            .unwrap_or_default();
        let mut event = AuditEvent {
            seq: self.events.len() as u64 + 1,
            at_ms,
            actor: meta.actor.clone(),
            request_id: meta.request_id.clone(),
            action: entry.action,
            target: entry.target,
            before: entry.before,
            after: entry.after,
            prev_hash,
            hash: String::new(),
        };
        event.hash = event.digest();
        // Most tenants have a handful of events: grow by half rather than
        // double, so a one-event chain holds one slot, not four.
        if self.events.len() == self.events.capacity() {
            self.events.reserve_exact((self.events.len() / 2).max(1));
        }
        self.events.push(encode(&event));
        event
    }

    /// Stamp of the newest event, if any.
    pub fn last_at_ms(&self) -> Option<i64> {
        self.events.last().map(|e| decode(e).at_ms)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// A chain from events read back (from the archive), if they verify.
    pub fn from_events(events: &[AuditEvent]) -> Result<AuditLog, ChainBreak> {
        verify(events)?;
        Ok(AuditLog {
            events: events.iter().map(encode).collect(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Check every link and every hash.
    pub fn verify(&self) -> Result<(), ChainBreak> {
        verify(&self.events())
    }

    /// Matching events in order, at most `limit`, and whether more follow.
    pub fn query(&self, q: &AuditQuery) -> (Vec<AuditEvent>, bool) {
        let mut matching = self.events.iter().map(|e| decode(e)).filter(|e| {
            e.seq > q.after_seq
                && q.action.as_ref().is_none_or(|a| e.action == *a)
                && q.actor.as_ref().is_none_or(|a| e.actor == *a)
                && q.from_ms.is_none_or(|f| e.at_ms >= f)
                && q.to_ms.is_none_or(|t| e.at_ms < t)
        });
        let page: Vec<AuditEvent> = matching.by_ref().take(q.limit).collect();
        let more = matching.next().is_some();
        (page, more)
    }

    /// Events stamped at or after `at_ms`, in order.
    pub fn events_since(&self, at_ms: i64) -> Vec<AuditEvent> {
        self.events
            .iter()
            .map(|e| decode(e))
            .filter(|e| e.at_ms >= at_ms)
            .collect()
    }

    /// Every event, decoded (for verification by a reader, and tests).
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.iter().map(|e| decode(e)).collect()
    }
}

/// Verify a sequence of events as a chain from its start.
pub fn verify(events: &[AuditEvent]) -> Result<(), ChainBreak> {
    let mut prev = String::new();
    for (i, e) in events.iter().enumerate() {
        if e.seq != i as u64 + 1 {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "sequence gap or reorder".into(),
            });
        }
        if e.prev_hash != prev {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "link to the previous event broken".into(),
            });
        }
        if e.digest() != e.hash {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "event content does not match its hash".into(),
            });
        }
        prev = e.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> AuditLog {
        let mut log = AuditLog::default();
        let meta = AuditMeta::new("alice", "req-1");
        for (i, action) in ["tenant.created", "quota.updated", "member.added"]
            .iter()
            .enumerate()
        {
            log.append(
                &meta,
                1_000 + i as i64,
                AuditEntry {
                    action: action.to_string(),
                    target: "api_requests".into(),
                    before: "{\"limit\":100}".into(),
                    after: "{\"limit\":200}".into(),
                },
            );
        }
        log
    }

    #[test]
    fn encodes_exactly_as_the_list_of_events_did() {
        // The form snapshots were written in before events were kept
        // encoded.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Before {
            events: Vec<AuditEvent>,
        }
        let log = log();
        let before = Before {
            events: log.events(),
        };
        let bytes = postcard::to_allocvec(&log).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&before).unwrap());
        let back: AuditLog = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, log);
        assert_eq!(back.verify(), Ok(()));
        let json = serde_json::to_value(&log).unwrap();
        assert_eq!(json, serde_json::to_value(&before).unwrap());
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(log().verify(), Ok(()));
    }

    #[test]
    fn any_edit_removal_or_reorder_is_detected() {
        let mut edited = log().events().to_vec();
        edited[1].after = "{\"limit\":999999}".into();
        assert_eq!(verify(&edited).unwrap_err().seq, 2);

        // Re-hashing the edited event is caught by the next link.
        edited[1].hash = edited[1].digest();
        assert_eq!(
            verify(&edited).unwrap_err(),
            ChainBreak {
                seq: 3,
                reason: "link to the previous event broken".into()
            }
        );

        let mut removed = log().events().to_vec();
        removed.remove(1);
        assert!(verify(&removed).is_err());

        let mut reordered = log().events().to_vec();
        reordered.swap(0, 1);
        assert!(verify(&reordered).is_err());
    }

    #[test]
    fn queries_filter_and_page() {
        let log = log();
        let q = AuditQuery {
            limit: 2,
            ..Default::default()
        };
        let (page, more) = log.query(&q);
        assert_eq!((page.len(), more), (2, true));
        let (page, more) = log.query(&AuditQuery {
            after_seq: page[1].seq,
            ..q.clone()
        });
        assert_eq!(
            (page.len(), more, page[0].action.as_str()),
            (1, false, "member.added")
        );
        let (page, _) = log.query(&AuditQuery {
            action: Some("quota.updated".into()),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(page.len(), 1);
    }
}
