//! [`ComponentBytes`]: a component value's encoded bytes, small ones inline.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest value kept inline: 22 bytes make the whole value 24 bytes,
/// the size of a fat `Arc` plus its tag.
const INLINE: usize = 22;

/// A component value encoded with the replication codec.
///
/// Shared: a value is serialized once when it changes and handed to the full
/// change set and to every client's change set without a re-encode. Values
/// of up to 22 bytes (positions, velocities, small structs: most game
/// components) live inline, so storing one costs no allocation and reading
/// it no pointer chase; a clone copies 24 bytes. Longer values are
/// reference-counted, and a clone shares them.
///
/// Serialized as a sequence of bytes, the same coding as `Arc<[u8]>` or
/// `Vec<u8>`.
#[derive(Clone)]
pub struct ComponentBytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl ComponentBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Shared(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for ComponentBytes {
    fn from(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..bytes.len()].copy_from_slice(bytes);
            // Fits: bytes.len() <= INLINE < 256.
            Self(Repr::Inline {
                len: bytes.len() as u8,
                buf,
            })
        } else {
            Self(Repr::Shared(bytes.into()))
        }
    }
}

impl<const N: usize> From<&[u8; N]> for ComponentBytes {
    fn from(bytes: &[u8; N]) -> Self {
        Self::from(&bytes[..])
    }
}

impl From<Vec<u8>> for ComponentBytes {
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            Self::from(bytes.as_slice())
        } else {
            Self(Repr::Shared(bytes.into()))
        }
    }
}

impl Default for ComponentBytes {
    fn default() -> Self {
        Self::from(&[][..])
    }
}

impl Deref for ComponentBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for ComponentBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for ComponentBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for ComponentBytes {}

impl std::hash::Hash for ComponentBytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for ComponentBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl Serialize for ComponentBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `[u8]`'s own coding: a sequence, as `Arc<[u8]>` had.
        self.as_slice().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ComponentBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_inline_and_long_ones_shared() {
        let short = ComponentBytes::from(&[7u8; INLINE][..]);
        assert!(matches!(short.0, Repr::Inline { len, .. } if usize::from(len) == INLINE));
        let long = ComponentBytes::from(vec![9u8; INLINE + 1]);
        assert!(matches!(long.0, Repr::Shared(_)));
        assert_eq!(&*short, &[7u8; INLINE][..]);
        assert_eq!(&*long, &[9u8; INLINE + 1][..]);
        assert_eq!(&*ComponentBytes::default(), &[] as &[u8]);
    }

    #[test]
    fn equality_and_coding_follow_the_bytes_not_the_storage() {
        let bytes: Vec<u8> = (0..40).collect();
        for len in [0, 1, INLINE, INLINE + 1, 40] {
            let a = ComponentBytes::from(&bytes[..len]);
            let b = ComponentBytes::from(bytes[..len].to_vec());
            assert_eq!(a, b);
            let config = bincode::config::standard();
            let coded = bincode::serde::encode_to_vec(&a, config).unwrap();
            let as_arc: Arc<[u8]> = bytes[..len].into();
            assert_eq!(
                coded,
                bincode::serde::encode_to_vec(&as_arc, config).unwrap()
            );
            let (back, _): (ComponentBytes, _) =
                bincode::serde::decode_from_slice(&coded, config).unwrap();
            assert_eq!(back, a);
        }
    }

    #[test]
    fn an_optional_value_is_as_small_as_a_shared_one() {
        assert_eq!(size_of::<Option<ComponentBytes>>(), 24);
    }
}
