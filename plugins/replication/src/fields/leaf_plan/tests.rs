use bevy_reflect::Reflect;
use glam::Vec2;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::codec::encode_component;
use crate::fields::diff_fields;

/// Every coding a plan reads, nested the way components nest.
#[derive(Reflect, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Every {
    at: Vec2,
    wide: f64,
    flag: bool,
    byte: u8,
    small: i8,
    short: u16,
    int: u32,
    long: u64,
    signed_short: i16,
    signed: i32,
    signed_long: i64,
    pair: Pair,
}

#[derive(Reflect, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Pair(u32, f32);

fn plan_of(value: &Every) -> LeafPlan {
    LeafPlan::of(value, "every", &encode_component(value), &mut |p| p.into())
        .expect("numbers and flags plan")
}

fn by_reflection(old: &Every, new: &Every) -> Vec<(String, FieldValue, FieldValue)> {
    let mut out = Vec::new();
    let mut path = "every".to_owned();
    diff_fields(old, new, &mut path, &mut |p, a, b| {
        out.push((p.to_owned(), a, b));
    });
    out
}

fn by_plan(plan: &mut LeafPlan, old: &Every, new: &Every) -> Vec<(String, FieldValue, FieldValue)> {
    let mut out = Vec::new();
    let read = plan.diff(
        &encode_component(old),
        &encode_component(new),
        &mut |p, a, b| out.push((p.to_string(), a, b)),
    );
    assert!(read, "both encodings read as planned");
    out
}

fn float() -> impl Strategy<Value = f32> {
    // NaN never equals itself, so neither diff could be compared with `==`.
    prop_oneof![Just(0.0), Just(-0.0), -1e6f32..1e6]
}

fn every() -> impl Strategy<Value = Every> {
    (
        (
            float(),
            float(),
            any::<f64>().prop_filter("not NaN", |v| !v.is_nan()),
        ),
        (any::<bool>(), any::<u8>(), any::<i8>()),
        // Around 251, where the variable-length integer grows.
        (
            prop_oneof![0u16..260, any::<u16>()],
            any::<u32>(),
            any::<u64>(),
        ),
        (any::<i16>(), any::<i32>(), any::<i64>()),
        (any::<u32>(), float()),
    )
        .prop_map(
            |((x, y, wide), (flag, byte, small), (short, int, long), (a, b, c), (p, q))| Every {
                at: Vec2::new(x, y),
                wide,
                flag,
                byte,
                small,
                short,
                int,
                long,
                signed_short: a,
                signed: b,
                signed_long: c,
                pair: Pair(p, q),
            },
        )
}

proptest! {
    /// The plan reports exactly what reflection reports, paths included.
    #[test]
    fn a_plan_diffs_as_reflection_does(old in every(), new in every(), same in any::<[bool; 12]>()) {
        // About half the leaves unchanged, as in a real change: those from `old`.
        let mut new = new;
        macro_rules! keep {
            ($($i:literal => $field:ident),*) => { $(if same[$i] { new.$field = old.$field; })* };
        }
        keep!(
            0 => at, 1 => wide, 2 => flag, 3 => byte, 4 => small, 5 => short,
            6 => int, 7 => long, 8 => signed_short, 9 => signed, 10 => signed_long, 11 => pair
        );
        let mut plan = plan_of(&old);
        prop_assert_eq!(by_plan(&mut plan, &old, &new), by_reflection(&old, &new));
    }
}

#[test]
fn signed_zero_is_no_change_as_in_reflection() {
    let mut old = plan_example();
    old.at = Vec2::new(0.0, 1.0);
    let mut new = old;
    new.at.x = -0.0;
    assert!(by_reflection(&old, &new).is_empty());
    assert!(by_plan(&mut plan_of(&old), &old, &new).is_empty());
}

fn plan_example() -> Every {
    Every {
        at: Vec2::new(1.0, 2.0),
        wide: 3.0,
        flag: true,
        byte: 250,
        small: -3,
        short: 251,
        int: 70_000,
        long: u64::MAX,
        signed_short: -300,
        signed: i32::MIN,
        signed_long: 5,
        pair: Pair(1, 2.0),
    }
}

#[test]
fn unreadable_bytes_call_nothing() {
    let value = plan_example();
    let mut plan = plan_of(&value);
    let bytes = encode_component(&value);
    let mut calls = 0;
    let mut count = |_: &FieldPath, _, _| calls += 1;
    assert!(!plan.diff(&bytes[..bytes.len() - 1], &bytes, &mut count));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(!plan.diff(&bytes, &longer, &mut count));
    let mut bad_flag = bytes.clone();
    // `flag` follows `at` (8 bytes) and `wide` (8 bytes).
    bad_flag[16] = 2;
    assert!(!plan.diff(&bytes, &bad_flag, &mut count));
    assert_eq!(calls, 0);
}

#[derive(Reflect, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
enum Mood {
    Calm,
    Angry(u8),
}

#[derive(Reflect, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct WithEnum {
    mood: Mood,
    speed: f32,
}

#[derive(Reflect, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Skips {
    kept: f32,
    #[serde(skip)]
    local: f32,
}

/// Serialized in the opposite order to its fields.
#[derive(Reflect, Clone, Copy, Debug, PartialEq)]
struct Backwards {
    a: u8,
    b: u32,
}

impl Serialize for Backwards {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.b, self.a).serialize(s)
    }
}

#[test]
fn types_not_coded_as_their_leaves_get_no_plan() {
    let mut intern = |p: &str| FieldPath::from(p);
    let with_enum = WithEnum {
        mood: Mood::Angry(3),
        speed: 1.0,
    };
    let bytes = encode_component(&with_enum);
    assert!(LeafPlan::of(&with_enum, "c", &bytes, &mut intern).is_none());

    let skips = Skips {
        kept: 1.0,
        local: 2.0,
    };
    let bytes = encode_component(&skips);
    assert!(LeafPlan::of(&skips, "c", &bytes, &mut intern).is_none());

    let backwards = Backwards { a: 1, b: 2 };
    let bytes = encode_component(&backwards);
    assert!(LeafPlan::of(&backwards, "c", &bytes, &mut intern).is_none());
}
