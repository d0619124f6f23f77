//! A component's leaves read straight from its encoded bytes.
//!
//! Diffing through reflection costs a dynamic call per struct level and a
//! downcast per leaf: about 300 instructions per changed component in the
//! village, a fifth of a serving tick. Most components are structs of
//! numbers and flags, and the codec writes those as their leaves one after
//! another. For such a type, a plan made once lists the leaves' paths and
//! codings, and a diff walks the old and the new bytes side by side.

use super::{FieldValue, leaf_value, walk_leaves};
use crate::change_set::FieldPath;

/// How the codec (bincode's standard configuration) writes one leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    /// One byte, 0 or 1.
    Bool,
    /// One byte, as is.
    U8,
    /// One byte, two's complement.
    I8,
    /// `u16`, `u32`, `u64`: bincode's variable-length integer.
    Unsigned,
    /// `i16`, `i32`, `i64`: zigzag, then variable-length.
    Signed,
    /// Four bytes, little-endian.
    F32,
    /// Eight bytes, little-endian.
    F64,
}

/// One leaf as read from bytes.
#[derive(Clone, Copy, Debug)]
enum Leaf {
    Bool(bool),
    Uint(u64),
    Int(i64),
    F32(f32),
    F64(f64),
}

impl Leaf {
    /// Whether the values differ as reflection compares them (floats by
    /// `==`, so `0.0` and `-0.0` are equal and `NaN` differs from itself).
    fn differs(self, other: Leaf) -> bool {
        match (self, other) {
            (Leaf::Bool(a), Leaf::Bool(b)) => a != b,
            (Leaf::Uint(a), Leaf::Uint(b)) => a != b,
            (Leaf::Int(a), Leaf::Int(b)) => a != b,
            (Leaf::F32(a), Leaf::F32(b)) => a != b,
            (Leaf::F64(a), Leaf::F64(b)) => a != b,
            _ => true,
        }
    }

    fn value(self) -> FieldValue {
        match self {
            Leaf::Bool(v) => FieldValue::Bool(v),
            Leaf::Uint(v) => FieldValue::Uint(v),
            Leaf::Int(v) => FieldValue::Int(v),
            Leaf::F32(v) => FieldValue::F32(v),
            Leaf::F64(v) => FieldValue::F64(v),
        }
    }
}

/// The leaves of a component type whose encoding is exactly its leaves in
/// reflection order, each a number or a flag.
#[derive(Debug)]
pub(crate) struct LeafPlan {
    leaves: Vec<(FieldPath, Coding)>,
    /// Leaves that differ in the diff under way: `(leaf, old, new)`.
    changed: Vec<(usize, Leaf, Leaf)>,
}

impl LeafPlan {
    /// Plans the type of `value`, whose encoding is `bytes`, with leaf paths
    /// under `name` interned by `intern`. `None` when a leaf is anything but a
    /// number or a flag, or when `bytes` do not read back as the reflected
    /// leaves (a type whose serde coding differs from its fields).
    pub fn of(
        value: &dyn bevy_reflect::PartialReflect,
        name: &str,
        bytes: &[u8],
        intern: &mut dyn FnMut(&str) -> FieldPath,
    ) -> Option<Self> {
        let mut leaves = Vec::new();
        let mut reflected = Vec::new();
        let mut plain = true;
        let mut path = name.to_owned();
        walk_leaves(value, &mut path, &mut |path, leaf| {
            match coding_of(leaf) {
                Some(coding) => leaves.push((intern(path), coding)),
                None => plain = false,
            }
            reflected.push(leaf_value(leaf));
        });
        if !plain {
            return None;
        }
        let plan = Self {
            leaves,
            changed: Vec::new(),
        };
        let mut reader = Reader(bytes);
        for ((_, coding), expected) in plan.leaves.iter().zip(&reflected) {
            if reader.leaf(*coding)?.value() != *expected {
                return None;
            }
        }
        reader.0.is_empty().then_some(plan)
    }

    /// Calls `out(path, old, new)` for every leaf that differs between the
    /// encodings `old` and `new`; returns false, having called nothing, when
    /// either does not read as planned.
    pub fn diff(
        &mut self,
        old: &[u8],
        new: &[u8],
        out: &mut dyn FnMut(&FieldPath, FieldValue, FieldValue),
    ) -> bool {
        self.changed.clear();
        let (mut old, mut new) = (Reader(old), Reader(new));
        for (i, (_, coding)) in self.leaves.iter().enumerate() {
            let (Some(a), Some(b)) = (old.leaf(*coding), new.leaf(*coding)) else {
                return false;
            };
            if a.differs(b) {
                self.changed.push((i, a, b));
            }
        }
        if !(old.0.is_empty() && new.0.is_empty()) {
            return false;
        }
        for &(i, a, b) in &self.changed {
            out(&self.leaves[i].0, a.value(), b.value());
        }
        true
    }
}

fn coding_of(leaf: &dyn bevy_reflect::PartialReflect) -> Option<Coding> {
    macro_rules! first_of {
        ($($t:ty => $coding:ident),* $(,)?) => {
            $(if leaf.try_downcast_ref::<$t>().is_some() {
                return Some(Coding::$coding);
            })*
        };
    }
    first_of!(
        f32 => F32, f64 => F64, bool => Bool, u8 => U8, i8 => I8,
        u16 => Unsigned, u32 => Unsigned, u64 => Unsigned,
        i16 => Signed, i32 => Signed, i64 => Signed,
    );
    None
}

/// Reads leaves off the front of an encoding.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    /// bincode's variable-length integer: one byte below 251, else a marker
    /// (251, 252, 253) and a `u16`, `u32` or `u64`.
    fn varint(&mut self) -> Option<u64> {
        let [first] = self.take::<1>()?;
        match first {
            0..=250 => Some(u64::from(first)),
            251 => Some(u16::from_le_bytes(self.take()?).into()),
            252 => Some(u32::from_le_bytes(self.take()?).into()),
            253 => Some(u64::from_le_bytes(self.take()?)),
            _ => None,
        }
    }

    fn leaf(&mut self, coding: Coding) -> Option<Leaf> {
        Some(match coding {
            Coding::Bool => match self.take::<1>()? {
                [0] => Leaf::Bool(false),
                [1] => Leaf::Bool(true),
                _ => return None,
            },
            Coding::U8 => Leaf::Uint(self.take::<1>()?[0].into()),
            Coding::I8 => Leaf::Int(i8::from_le_bytes(self.take()?).into()),
            Coding::Unsigned => Leaf::Uint(self.varint()?),
            Coding::Signed => {
                let zigzag = self.varint()?;
                Leaf::Int((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
            }
            Coding::F32 => Leaf::F32(f32::from_le_bytes(self.take()?)),
            Coding::F64 => Leaf::F64(f64::from_le_bytes(self.take()?)),
        })
    }
}

#[cfg(test)]
mod tests;
