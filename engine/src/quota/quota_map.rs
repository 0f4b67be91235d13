//! A tenant's quotas by name, in a sorted vector sized to fit. A tenant has
//! a handful of quotas; a `BTreeMap` would give each tenant a node of
//! eleven slots (about 2 KiB here) for them. With a million resident
//! tenants that slack is most of the node's memory. Lookups are a binary
//! search over a few names. Names of up to 24 bytes (all the built-in
//! ones) are stored inline rather than in an allocation of their own.
//! Serialized as a map, as the `BTreeMap` was.
use super::QuotaState;
use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaMap(Vec<(CompactString, QuotaState)>);

impl QuotaMap {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&QuotaState> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut QuotaState> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Insert or replace; returns the replaced state.
    pub fn insert(&mut self, name: String, q: QuotaState) -> Option<QuotaState> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, q)),
            Err(i) => {
                // Quotas are added rarely: grow by exactly one.
                self.0.reserve_exact(1);
                self.0.insert(i, (CompactString::new(&name), q));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<QuotaState> {
        let i = self.find(name).ok()?;
        let (_, q) = self.0.remove(i);
        self.0.shrink_to_fit();
        Some(q)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &QuotaState)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn values(&self) -> impl Iterator<Item = &QuotaState> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut QuotaState> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

impl FromIterator<(String, QuotaState)> for QuotaMap {
    fn from_iter<I: IntoIterator<Item = (String, QuotaState)>>(iter: I) -> Self {
        // Through a BTreeMap: sorted, and a later duplicate wins, as before.
        let sorted: BTreeMap<String, QuotaState> = iter.into_iter().collect();
        let mut v: Vec<_> = sorted
            .into_iter()
            .map(|(k, q)| (CompactString::new(&k), q))
            .collect();
        v.shrink_to_fit();
        QuotaMap(v)
    }
}

impl<'a> IntoIterator for &'a QuotaMap {
    type Item = (&'a str, &'a QuotaState);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (CompactString, QuotaState)>,
        fn(&'a (CompactString, QuotaState)) -> (&'a str, &'a QuotaState),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl std::ops::Index<&str> for QuotaMap {
    type Output = QuotaState;

    fn index(&self, name: &str) -> &QuotaState {
        self.get(name)
            .unwrap_or_else(|| panic!("no quota named {name:?}"))
    }
}

impl Serialize for QuotaMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_str(), v)))
    }
}

impl<'de> Deserialize<'de> for QuotaMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<String, QuotaState>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Period, QuotaPolicy};

    fn q(limit: u64) -> QuotaState {
        QuotaState::new(QuotaPolicy::counter(Period::Monthly, Some(limit)))
    }

    #[test]
    fn behaves_as_a_sorted_map() {
        let mut m: QuotaMap = [("b".to_string(), q(2)), ("a".to_string(), q(1))]
            .into_iter()
            .collect();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m["a"].policy.limit, Some(1));
        assert!(m.insert("c".into(), q(3)).is_none());
        assert_eq!(m.insert("a".into(), q(10)).unwrap().policy.limit, Some(1));
        assert_eq!(m.get("a").unwrap().policy.limit, Some(10));
        m.get_mut("b").unwrap().used = 5;
        assert_eq!(m["b"].used, 5);
        assert_eq!(m.remove("b").unwrap().used, 5);
        assert!(!m.contains_key("b") && m.get("b").is_none() && m.remove("b").is_none());
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn serializes_exactly_as_the_btreemap_did() {
        let pairs = [("x".to_string(), q(1)), ("api".to_string(), q(9))];
        let map: QuotaMap = pairs.clone().into_iter().collect();
        let tree: BTreeMap<String, QuotaState> = pairs.into_iter().collect();
        let bytes = postcard::to_allocvec(&map).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&tree).unwrap());
        assert_eq!(postcard::from_bytes::<QuotaMap>(&bytes).unwrap(), map);
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            serde_json::to_string(&tree).unwrap()
        );
    }
}
