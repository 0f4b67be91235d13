//! Flags operators define for the whole platform, kept in the meta group:
//! each replaces the catalog's flag of its key (or adds one), and every
//! change is recorded with who made it, for the platform's audit.
use super::flags::FlagDef;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many flag changes the platform keeps (oldest dropped first).
pub const HISTORY: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFlags {
    pub flags: BTreeMap<String, PlatformFlag>,
    /// The latest changes, oldest first.
    pub history: VecDeque<FlagRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFlag {
    pub def: FlagDef,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

/// One change to a platform flag, as the audit shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagRecord {
    pub key: String,
    pub before: Option<FlagDef>,
    pub after: Option<FlagDef>,
    pub by: String,
    pub request_id: String,
    pub at_ms: i64,
}

/// Set (`def`) or remove (`None`) a platform flag: `MetaOp::PlatformFlag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFlagOp {
    pub key: String,
    pub def: Option<FlagDef>,
    pub by: String,
    pub request_id: String,
    pub at_ms: i64,
}

impl PlatformFlags {
    /// Apply `op`; false if it changed nothing (removing an absent flag).
    pub fn apply(&mut self, op: &PlatformFlagOp) -> bool {
        let before = match &op.def {
            Some(def) => self
                .flags
                .insert(
                    op.key.clone(),
                    PlatformFlag {
                        def: def.clone(),
                        updated_at_ms: op.at_ms,
                        updated_by: op.by.clone(),
                    },
                )
                .map(|f| f.def),
            None => match self.flags.remove(&op.key) {
                Some(f) => Some(f.def),
                None => return false,
            },
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(FlagRecord {
            key: op.key.clone(),
            before,
            after: op.def.clone(),
            by: op.by.clone(),
            request_id: op.request_id.clone(),
            at_ms: op.at_ms,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::{FlagType, FlagValue};

    fn def(v: bool) -> FlagDef {
        FlagDef {
            kind: FlagType::Boolean,
            default: FlagValue::of("default", &serde_json::json!(v)).unwrap(),
            tiers: Default::default(),
            min_tier: None,
            enabled: true,
            description: String::new(),
        }
    }

    fn op(key: &str, d: Option<FlagDef>, at_ms: i64) -> PlatformFlagOp {
        PlatformFlagOp {
            key: key.into(),
            def: d,
            by: "op".into(),
            request_id: "r".into(),
            at_ms,
        }
    }

    #[test]
    fn changes_are_recorded_with_before_and_after_and_the_history_is_bounded() {
        let mut p = PlatformFlags::default();
        assert!(p.apply(&op("a", Some(def(false)), 1)));
        assert!(p.apply(&op("a", Some(def(true)), 2)));
        assert!(p.apply(&op("a", None, 3)));
        assert!(!p.apply(&op("a", None, 4)), "nothing to remove");
        assert!(p.flags.is_empty());
        let h: Vec<_> = p
            .history
            .iter()
            .map(|r| (r.before.clone(), r.after.clone()))
            .collect();
        assert_eq!(
            h,
            [
                (None, Some(def(false))),
                (Some(def(false)), Some(def(true))),
                (Some(def(true)), None)
            ]
        );
        for i in 0..HISTORY as i64 {
            p.apply(&op("b", Some(def(i % 2 == 0)), 10 + i));
        }
        assert_eq!(p.history.len(), HISTORY);
        assert_eq!(p.history.front().unwrap().at_ms, 10);
    }
}
