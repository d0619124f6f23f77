//! How the changed values of one component type become field changes.

use std::marker::PhantomData;

use bevy_platform::collections::HashMap;

use crate::change_set::FieldPath;
use crate::codec::decode_component;
use crate::fields::{FieldValue, LeafPlan, diff_fields, visit_fields};
use crate::registry::ReplicatedComponent;

/// Diffs run through both paths, which must agree, before a plan is
/// trusted alone: a plan is checked against one value when it is made, and
/// a serde coding that differs from the fields only for some values (which
/// that check cannot rule out) shows up here. Debug builds check every diff.
const CHECKED_DIFFS: u32 = 64;

/// Turns encoded old and new values of `C` into field changes: from the
/// bytes when `C` is a plain struct of numbers and flags (see
/// [`LeafPlan`]), else through reflection on the decoded values.
pub(crate) struct FieldDiffer<C> {
    paths: PathCache,
    planning: Planning,
    component: PhantomData<fn() -> C>,
}

enum Planning {
    /// No value seen yet.
    Unplanned,
    /// Read from the bytes; the first `checks_left` diffs run through
    /// reflection too.
    Planned { plan: LeafPlan, checks_left: u32 },
    /// Through reflection: `C` has other leaves, or its plan once disagreed.
    Reflection,
}

/// A changed field as a differ reports it.
type Change = (FieldPath, FieldValue, FieldValue);

impl<C> Default for FieldDiffer<C> {
    fn default() -> Self {
        Self {
            paths: PathCache::default(),
            planning: Planning::Unplanned,
            component: PhantomData,
        }
    }
}

impl<C: ReplicatedComponent> FieldDiffer<C> {
    /// Calls `out(path, old, new)` for every field of the component `name`
    /// that differs between the encodings `old` and `new`; every field, from
    /// `<absent>`, when `old` is `None` (the component was just added).
    pub fn diff(
        &mut self,
        name: &str,
        old: Option<&[u8]>,
        new: &[u8],
        out: &mut dyn FnMut(FieldPath, FieldValue, FieldValue),
    ) {
        let Self {
            paths, planning, ..
        } = self;
        let Some(old) = old else {
            let Some(new) = decoded::<C>(name, new) else {
                return;
            };
            let mut path = name.to_owned();
            visit_fields(new.as_partial_reflect(), &mut path, &mut |field, new| {
                out(paths.get(field), FieldValue::Debug("<absent>".into()), new);
            });
            return;
        };
        if let Planning::Unplanned = planning {
            *planning = plan::<C>(name, new, paths);
        }
        if let Planning::Planned { plan, checks_left } = planning {
            if *checks_left == 0 && !cfg!(debug_assertions) {
                if plan.diff(old, new, &mut |field, a, b| out(field.clone(), a, b)) {
                    return;
                }
            } else {
                *checks_left = checks_left.saturating_sub(1);
                let mut planned: Vec<Change> = Vec::new();
                let read = plan.diff(old, new, &mut |field, a, b| {
                    planned.push((field.clone(), a, b));
                });
                let mut reflected: Vec<Change> = Vec::new();
                by_reflection::<C>(name, old, new, paths, &mut |field, a, b| {
                    reflected.push((field, a, b));
                });
                if !read || planned != reflected {
                    tracing::warn!(
                        component = name,
                        "reading the fields from the bytes disagreed with reflection; \
                         diffing through reflection from now on"
                    );
                    *planning = Planning::Reflection;
                }
                for (field, a, b) in reflected {
                    out(field, a, b);
                }
                return;
            }
        }
        by_reflection::<C>(name, old, new, paths, out);
    }
}

fn plan<C: ReplicatedComponent>(name: &str, bytes: &[u8], paths: &mut PathCache) -> Planning {
    let Some(value) = decoded::<C>(name, bytes) else {
        return Planning::Unplanned;
    };
    match LeafPlan::of(value.as_partial_reflect(), name, bytes, &mut |p| {
        paths.get(p)
    }) {
        Some(plan) => Planning::Planned {
            plan,
            checks_left: CHECKED_DIFFS,
        },
        None => Planning::Reflection,
    }
}

fn by_reflection<C: ReplicatedComponent>(
    name: &str,
    old: &[u8],
    new: &[u8],
    paths: &mut PathCache,
    out: &mut dyn FnMut(FieldPath, FieldValue, FieldValue),
) {
    let (Some(old), Some(new)) = (decoded::<C>(name, old), decoded::<C>(name, new)) else {
        return;
    };
    let mut path = name.to_owned();
    diff_fields(
        old.as_partial_reflect(),
        new.as_partial_reflect(),
        &mut path,
        &mut |field, a, b| out(paths.get(field), a, b),
    );
}

/// Both sides are this server's own encodings of a `C`: failing to decode
/// one is a bug in `C`'s serde impls, reported, not a reason to stop.
fn decoded<C: ReplicatedComponent>(name: &str, bytes: &[u8]) -> Option<C> {
    decode_component::<C>(bytes)
        .inspect_err(|e| tracing::error!(component = name, "cannot decode a recorded value: {e}"))
        .ok()
}

/// The interned field paths of one component.
#[derive(Default)]
struct PathCache(HashMap<Box<str>, FieldPath>);

impl PathCache {
    fn get(&mut self, path: &str) -> FieldPath {
        if let Some(p) = self.0.get(path) {
            return p.clone();
        }
        let p: FieldPath = path.into();
        self.0.insert(path.into(), p.clone());
        p
    }
}

#[cfg(test)]
mod tests {
    use bevy_ecs::component::Component;
    use bevy_reflect::Reflect;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::*;
    use crate::codec::encode_component;

    /// Coded as its fields only while `a` is even: odd, `b` goes out inverted.
    #[derive(Component, Reflect, Clone, Copy, Debug, PartialEq)]
    struct Sneaky {
        a: u8,
        b: u8,
    }

    impl Serialize for Sneaky {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let b = if self.a.is_multiple_of(2) {
                self.b
            } else {
                !self.b
            };
            (self.a, b).serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for Sneaky {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let (a, b) = <(u8, u8)>::deserialize(d)?;
            let b = if a.is_multiple_of(2) { b } else { !b };
            Ok(Self { a, b })
        }
    }

    fn diff(differ: &mut FieldDiffer<Sneaky>, old: Sneaky, new: Sneaky) -> Vec<Change> {
        let mut out = Vec::new();
        let (old, new) = (encode_component(&old), encode_component(&new));
        differ.diff("c", Some(&old), &new, &mut |f, a, b| out.push((f, a, b)));
        out
    }

    #[test]
    fn a_plan_that_disagrees_with_reflection_is_dropped() {
        let mut differ = FieldDiffer::<Sneaky>::default();
        let even = diff(&mut differ, Sneaky { a: 2, b: 5 }, Sneaky { a: 2, b: 6 });
        assert_eq!(
            even,
            [("c.b".into(), FieldValue::Uint(5), FieldValue::Uint(6))]
        );
        assert!(matches!(differ.planning, Planning::Planned { .. }));

        let odd = diff(&mut differ, Sneaky { a: 3, b: 5 }, Sneaky { a: 3, b: 6 });
        assert_eq!(
            odd,
            [("c.b".into(), FieldValue::Uint(5), FieldValue::Uint(6))]
        );
        assert!(matches!(differ.planning, Planning::Reflection));
    }

    #[test]
    fn an_added_component_lists_every_field_from_absent() {
        let mut differ = FieldDiffer::<Sneaky>::default();
        let mut out = Vec::new();
        let new = encode_component(&Sneaky { a: 1, b: 2 });
        differ.diff("c", None, &new, &mut |f, a, b| {
            out.push((f.to_string(), a, b))
        });
        let absent = || FieldValue::Debug("<absent>".into());
        assert_eq!(
            out,
            [
                ("c.a".to_owned(), absent(), FieldValue::Uint(1)),
                ("c.b".to_owned(), absent(), FieldValue::Uint(2)),
            ]
        );
    }
}
