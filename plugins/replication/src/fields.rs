//! Field-level views of replicated components, through `bevy_reflect`.
//!
//! Components opt into field enumeration with `#[derive(Reflect)]` — no
//! per-component code. A field path joins the component's name and the field
//! names, e.g. `position.x` or `needs.hunger`. Single-field tuple structs are
//! transparent (`Position(Vec2)` yields `position.x`, not `position.0.x`);
//! enums and collections are leaves, shown by their debug text.

use std::fmt::Write as _;

use bevy_reflect::{PartialReflect, ReflectRef};
use serde::{Deserialize, Serialize};

mod leaf_plan;
pub(crate) use leaf_plan::LeafPlan;

/// The value of one leaf field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FieldValue {
    /// A boolean.
    Bool(bool),
    /// Any signed integer.
    Int(i64),
    /// Any unsigned integer.
    Uint(u64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// A string.
    Text(String),
    /// Anything else (enums, collections), by its debug representation.
    Debug(String),
}

impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::Int(v) => write!(f, "{v}"),
            FieldValue::Uint(v) => write!(f, "{v}"),
            FieldValue::F32(v) => write!(f, "{v}"),
            FieldValue::F64(v) => write!(f, "{v}"),
            FieldValue::Text(v) => write!(f, "{v:?}"),
            FieldValue::Debug(v) => f.write_str(v),
        }
    }
}

/// Calls `out(path, old, new)` for every leaf field whose value differs between `old` and `new`.
///
/// `path` holds the prefix (normally the component name) and is restored on return.
///
/// Only leaves are compared: the server diffs only components whose bytes
/// changed, so comparing a whole struct first (reflection's equality walks
/// every field) and then its fields again was a second walk for nothing
/// (a struct's reflected equality is its fields', so the result is the same).
pub fn diff_fields(
    old: &dyn PartialReflect,
    new: &dyn PartialReflect,
    path: &mut String,
    out: &mut dyn FnMut(&str, FieldValue, FieldValue),
) {
    match (old.reflect_ref(), new.reflect_ref()) {
        (ReflectRef::Struct(a), ReflectRef::Struct(b)) => {
            for i in 0..a.field_len() {
                let (Some(name), Some(fa), Some(fb)) = (a.name_at(i), a.field_at(i), b.field_at(i))
                else {
                    continue;
                };
                let len = push_segment(path, name);
                diff_fields(fa, fb, path, out);
                path.truncate(len);
            }
        }
        (ReflectRef::TupleStruct(a), ReflectRef::TupleStruct(b)) if a.field_len() == 1 => {
            if let (Some(fa), Some(fb)) = (a.field(0), b.field(0)) {
                diff_fields(fa, fb, path, out);
            }
        }
        (ReflectRef::TupleStruct(a), ReflectRef::TupleStruct(b)) => {
            for i in 0..a.field_len() {
                let (Some(fa), Some(fb)) = (a.field(i), b.field(i)) else {
                    continue;
                };
                let len = push_segment(path, &i.to_string());
                diff_fields(fa, fb, path, out);
                path.truncate(len);
            }
        }
        _ => {
            if old.reflect_partial_eq(new) != Some(true) {
                out(path, leaf_value(old), leaf_value(new));
            }
        }
    }
}

/// Calls `out(path, value)` for every leaf field of `value`.
pub fn visit_fields(
    value: &dyn PartialReflect,
    path: &mut String,
    out: &mut dyn FnMut(&str, FieldValue),
) {
    walk_leaves(value, path, &mut |path, leaf| out(path, leaf_value(leaf)));
}

/// Calls `out(path, leaf)` for every leaf of `value`, in the order and with
/// the paths [`diff_fields`] uses.
fn walk_leaves(
    value: &dyn PartialReflect,
    path: &mut String,
    out: &mut dyn FnMut(&str, &dyn PartialReflect),
) {
    match value.reflect_ref() {
        ReflectRef::Struct(s) => {
            for i in 0..s.field_len() {
                let (Some(name), Some(field)) = (s.name_at(i), s.field_at(i)) else {
                    continue;
                };
                let len = push_segment(path, name);
                walk_leaves(field, path, out);
                path.truncate(len);
            }
        }
        ReflectRef::TupleStruct(t) if t.field_len() == 1 => {
            if let Some(field) = t.field(0) {
                walk_leaves(field, path, out);
            }
        }
        ReflectRef::TupleStruct(t) => {
            for i in 0..t.field_len() {
                let Some(field) = t.field(i) else { continue };
                let len = push_segment(path, &i.to_string());
                walk_leaves(field, path, out);
                path.truncate(len);
            }
        }
        _ => out(path, value),
    }
}

fn push_segment(path: &mut String, segment: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
    len
}

/// Converts a leaf to a [`FieldValue`], falling back to its debug text.
fn leaf_value(value: &dyn PartialReflect) -> FieldValue {
    macro_rules! try_as {
        ($($t:ty => $variant:ident),* $(,)?) => {
            $(if let Some(v) = value.try_downcast_ref::<$t>() {
                return FieldValue::$variant((*v).into());
            })*
        };
    }
    try_as!(
        f32 => F32, f64 => F64, bool => Bool,
        u8 => Uint, u16 => Uint, u32 => Uint, u64 => Uint,
        i8 => Int, i16 => Int, i32 => Int, i64 => Int,
    );
    if let Some(v) = value.try_downcast_ref::<String>() {
        return FieldValue::Text(v.clone());
    }
    let mut text = String::new();
    let _ = write!(text, "{value:?}");
    FieldValue::Debug(text)
}

#[cfg(test)]
mod tests {
    use bevy_reflect::Reflect;
    use glam::Vec2;

    use super::*;

    #[derive(Reflect, Clone, PartialEq, Debug)]
    struct Pos(Vec2);

    #[derive(Reflect, Clone, PartialEq, Debug)]
    enum Mood {
        Calm,
        Angry(u8),
    }

    #[derive(Reflect, Clone, PartialEq, Debug)]
    struct Mind {
        hunger: f32,
        mood: Mood,
        count: u32,
    }

    fn diffs(
        a: &dyn PartialReflect,
        b: &dyn PartialReflect,
        name: &str,
    ) -> Vec<(String, FieldValue, FieldValue)> {
        let mut out = Vec::new();
        let mut path = name.to_string();
        diff_fields(a, b, &mut path, &mut |p, o, n| {
            out.push((p.to_string(), o, n))
        });
        assert_eq!(path, name, "the prefix is restored");
        out
    }

    #[test]
    fn newtypes_are_transparent_and_only_changed_fields_are_reported() {
        let d = diffs(
            &Pos(Vec2::new(1.0, 2.0)),
            &Pos(Vec2::new(1.0, 3.0)),
            "position",
        );
        assert_eq!(
            d,
            vec![(
                "position.y".into(),
                FieldValue::F32(2.0),
                FieldValue::F32(3.0)
            )]
        );
    }

    #[test]
    fn enums_are_leaves() {
        let a = Mind {
            hunger: 0.5,
            mood: Mood::Calm,
            count: 1,
        };
        let b = Mind {
            hunger: 0.5,
            mood: Mood::Angry(3),
            count: 2,
        };
        let d = diffs(&a, &b, "mind");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0, "mind.mood");
        assert!(matches!(&d[0].2, FieldValue::Debug(t) if t.contains("Angry")));
        assert_eq!(
            d[1],
            (
                "mind.count".into(),
                FieldValue::Uint(1),
                FieldValue::Uint(2)
            )
        );
        assert!(diffs(&a, &a.clone(), "mind").is_empty());
    }

    #[test]
    fn visit_lists_every_leaf() {
        let mut seen = Vec::new();
        let mut path = "mind".to_string();
        visit_fields(
            &Mind {
                hunger: 0.25,
                mood: Mood::Calm,
                count: 7,
            },
            &mut path,
            &mut |p, v| seen.push((p.to_string(), v)),
        );
        let paths: Vec<_> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["mind.hunger", "mind.mood", "mind.count"]);
        assert_eq!(seen[0].1, FieldValue::F32(0.25));
    }
}
