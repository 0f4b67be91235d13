//! A part of a tenant's state that most tenants leave at its default,
//! held in a box only once it differs.
//!
//! An idle tenant's state sits in memory on every replica of its group;
//! branding, alert settings and shared-usage lines are set by few tenants
//! but were 664 of a tenant's 1,032 inline bytes. `Sparse<T>` is one word
//! while `T` is at its default. It encodes exactly as `T` (the default when
//! empty), so stored states and their golden bytes do not change, and it
//! compares by value: an empty one equals a boxed default.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::{Deref, DerefMut};

/// A type with one shared default value to lend while nothing is boxed.
pub trait SharedDefault: Default + PartialEq + 'static {
    fn shared_default() -> &'static Self;
}

/// Implements [`SharedDefault`] for a type with a static default.
#[macro_export]
macro_rules! shared_default {
    ($t:ty) => {
        impl $crate::sparse::SharedDefault for $t {
            fn shared_default() -> &'static Self {
                static DEFAULT: std::sync::LazyLock<$t> = std::sync::LazyLock::new(<$t>::default);
                &DEFAULT
            }
        }
    };
}

#[derive(Debug, Clone, Default)]
pub struct Sparse<T>(Option<Box<T>>);

impl<T: SharedDefault> Sparse<T> {
    pub fn new(value: T) -> Self {
        if value == T::default() {
            Sparse(None)
        } else {
            Sparse(Some(Box::new(value)))
        }
    }

    /// Whether a box is held.
    #[cfg(test)]
    fn is_boxed(&self) -> bool {
        self.0.is_some()
    }
}

impl<T: SharedDefault> Deref for Sparse<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self.0.as_deref() {
            Some(value) => value,
            None => T::shared_default(),
        }
    }
}

/// Writing boxes the value (a write that leaves the default in place keeps
/// the box: rare, and equality does not see it).
impl<T: SharedDefault> DerefMut for Sparse<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Default::default)
    }
}

impl<T: SharedDefault> PartialEq for Sparse<T> {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

impl<T: SharedDefault + Eq> Eq for Sparse<T> {}

impl<T: SharedDefault + Serialize> Serialize for Sparse<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de, T: SharedDefault + Deserialize<'de>> Deserialize<'de> for Sparse<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Sparse::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    struct Branding {
        name: String,
        colors: Vec<u32>,
    }
    crate::shared_default!(Branding);

    #[test]
    fn a_default_value_holds_no_box_and_encodes_as_the_value() {
        let empty: Sparse<Branding> = Sparse::default();
        assert!(!empty.is_boxed());
        assert_eq!(std::mem::size_of::<Sparse<Branding>>(), 8);
        assert_eq!(
            postcard::to_allocvec(&empty).unwrap(),
            postcard::to_allocvec(&Branding::default()).unwrap()
        );
        let back: Sparse<Branding> =
            postcard::from_bytes(&postcard::to_allocvec(&Branding::default()).unwrap()).unwrap();
        assert!(!back.is_boxed(), "a decoded default is not boxed");
        assert_eq!(back.name, "");
    }

    #[test]
    fn a_set_value_is_boxed_encodes_as_the_value_and_compares_by_value() {
        let set = Branding {
            name: "Acme".into(),
            colors: vec![0xff0000],
        };
        let mut s: Sparse<Branding> = Sparse::default();
        // Written through the reference, as the state's code writes it.
        let b: &mut Branding = &mut s;
        b.name.push_str("Acme");
        b.colors.push(0xff0000);
        assert!(s.is_boxed());
        assert_eq!(*s, set);
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&set).unwrap());
        let back: Sparse<Branding> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
        // Back to the default by a write: still boxed, equal to an empty one.
        s.name.clear();
        s.colors.clear();
        assert!(s.is_boxed());
        assert_eq!(s, Sparse::default());
        assert_eq!(Sparse::new(Branding::default()), Sparse::default());
        assert!(!Sparse::new(Branding::default()).is_boxed());
    }
}
