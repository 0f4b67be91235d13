//! The live scope values of one quota and their meters, found by hash.
//!
//! A scoped decision looks its value up twice (the actor's copy of the
//! tenant, then the state machine's); in an ordered map of a thousand
//! values that was a dozen string comparisons each, the largest part of
//! what a scope added to a decision. Nothing depends on the map's order
//! but its encoding, so it is encoded sorted by value: the bytes are those
//! of the ordered map it replaces (format 19), and equal on every replica.
//!
//! The hasher is keyed per map (std's `RandomState`): scope values come
//! from end users, and a fixed hash would let them choose colliding values.
use super::meter::Meter;
use compact_str::CompactString;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

/// Scope value → meter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeMeters(HashMap<CompactString, Meter>);

impl ScopeMeters {
    /// Give memory back once a sweep has dropped most values: a hash
    /// table keeps its capacity when entries go, and a day's million end
    /// users would otherwise stay allocated after their period ends. A
    /// table at least a quarter full is left alone (a value's meter comes
    /// back when it is used again).
    pub fn shrink_after_sweep(&mut self) {
        if self.0.capacity() > 4 * self.0.len().max(8) {
            self.0.shrink_to_fit();
        }
    }
}

impl Deref for ScopeMeters {
    type Target = HashMap<CompactString, Meter>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for ScopeMeters {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a ScopeMeters {
    type Item = (&'a CompactString, &'a Meter);
    type IntoIter = std::collections::hash_map::Iter<'a, CompactString, Meter>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<(CompactString, Meter)> for ScopeMeters {
    fn from_iter<I: IntoIterator<Item = (CompactString, Meter)>>(it: I) -> Self {
        ScopeMeters(it.into_iter().collect())
    }
}

impl Serialize for ScopeMeters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<(&CompactString, &Meter)> = self.0.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(sorted.len()))?;
        for (value, meter) in sorted {
            map.serialize_entry(value, meter)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ScopeMeters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        HashMap::deserialize(d).map(ScopeMeters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meter(used: u64) -> Meter {
        Meter {
            used,
            ..Meter::default()
        }
    }

    #[test]
    fn encodes_as_the_ordered_map_it_replaced_whatever_the_insertion_order() {
        let values = [
            "zoe",
            "alice",
            "premium_bob",
            "carol-with-a-long-id-beyond-24-bytes",
            "",
        ];
        let ordered: BTreeMap<CompactString, Meter> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (CompactString::new(v), meter(i as u64 + 1)))
            .collect();
        let want = postcard::to_allocvec(&ordered).unwrap();
        for rev in [false, true] {
            let mut m = ScopeMeters::default();
            let mut order: Vec<_> = values.iter().enumerate().collect();
            if rev {
                order.reverse();
            }
            for (i, v) in order {
                m.insert(CompactString::new(v), meter(i as u64 + 1));
            }
            assert_eq!(postcard::to_allocvec(&m).unwrap(), want);
            let back: ScopeMeters = postcard::from_bytes(&want).unwrap();
            assert_eq!(back, m);
            assert_eq!(back["alice"].used, 2);
        }
    }

    #[test]
    fn a_sweep_that_leaves_few_values_gives_the_table_back() {
        let mut m: ScopeMeters = (0..10_000)
            .map(|i| (CompactString::new(format!("user-{i}")), meter(1)))
            .collect();
        let full = m.capacity();
        m.retain(|v, _| v.ends_with("00"));
        m.shrink_after_sweep();
        assert_eq!(m.len(), 99, "user-100, user-200, … user-9900");
        assert!(m.capacity() < full / 16, "{} of {full}", m.capacity());
        m.retain(|_, _| false);
        m.shrink_after_sweep();
        assert_eq!(m.capacity(), 0);
        // A table a quarter full or more keeps its room.
        let mut m: ScopeMeters = (0..1_000)
            .map(|i| (CompactString::new(format!("user-{i}")), meter(1)))
            .collect();
        let room = m.capacity();
        m.retain(|v, _| !v.ends_with(['1', '3', '5', '7', '9']));
        assert_eq!(m.len(), 500);
        m.shrink_after_sweep();
        // (removal may leave tombstones, which a table counts off its room)
        assert!(m.capacity() * 2 > room, "{} of {room}", m.capacity());
    }

    #[test]
    fn an_empty_map_encodes_as_an_empty_ordered_map() {
        let empty: BTreeMap<CompactString, Meter> = BTreeMap::new();
        assert_eq!(
            postcard::to_allocvec(&ScopeMeters::default()).unwrap(),
            postcard::to_allocvec(&empty).unwrap()
        );
    }
}
