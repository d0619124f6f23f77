//! The wire format: round trips, MTU splitting, and total decoding of hostile bytes.

use kasagi_replication::change_set::{
    ComponentBytes, EntityState, EntityUpdate, LimitedChangeSet, Move, MoveTo, QPos,
};
use kasagi_replication::codec::{DecodeError, decode_packet, encode_packets};
use kasagi_replication::{KindId, NetId};
use proptest::prelude::*;

fn qpos() -> impl Strategy<Value = QPos> {
    (any::<i32>(), any::<i32>()).prop_map(|(x, y)| QPos { x, y })
}

fn components() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::btree_map(0u8..8, prop::collection::vec(any::<u8>(), 0..40), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

fn ids(max: usize) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::btree_set(prop_oneof![0u64..2_000, any::<u64>()], 0..max)
        .prop_map(|s| s.into_iter().collect())
}

fn change_set() -> impl Strategy<Value = LimitedChangeSet> {
    (
        1u64..u64::MAX / 2,
        prop::option::of(1u64..100),
        prop::option::of(any::<u64>()),
        ids(30).prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids),
                prop::collection::vec((any::<u16>(), prop::option::of(qpos()), components()), n),
            )
        }),
        ids(60).prop_flat_map(|ids| {
            let n = ids.len();
            (Just(ids), prop::collection::vec((any::<bool>(), qpos()), n))
        }),
        ids(30).prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids),
                prop::collection::vec((components(), any::<u64>()), n),
            )
        }),
        ids(30),
    )
        .prop_map(
            |(tick, lag, checksum, (c_ids, creates), (m_ids, moves), (u_ids, updates), removed)| {
                LimitedChangeSet {
                    tick,
                    baseline: lag.map(|l| tick - l.min(tick)).filter(|b| *b < tick),
                    checksum,
                    created: c_ids
                        .into_iter()
                        .zip(creates)
                        .map(|(id, (kind, position, components))| EntityState {
                            id: NetId(id),
                            kind: KindId(kind),
                            position,
                            components: shared(components),
                        })
                        .collect(),
                    moved: m_ids
                        .into_iter()
                        .zip(moves)
                        .map(|(id, (delta, p))| Move {
                            id: NetId(id),
                            to: if delta {
                                MoveTo::Delta(p)
                            } else {
                                MoveTo::Absolute(p)
                            },
                        })
                        .collect(),
                    updated: u_ids
                        .into_iter()
                        .zip(updates)
                        .map(|(id, (set, unset))| EntityUpdate {
                            id: NetId(id),
                            set: shared(set),
                            unset,
                        })
                        .collect(),
                    removed: removed.into_iter().map(NetId).collect(),
                }
            },
        )
}

/// Decodes every packet and joins the parts.
fn decode_all(packets: &[Vec<u8>]) -> LimitedChangeSet {
    let mut parts: Vec<_> = packets
        .iter()
        .map(|p| decode_packet(p).expect("own packets decode"))
        .collect();
    parts.sort_by_key(|p| p.part);
    let n = parts[0].parts;
    assert_eq!(usize::from(n), parts.len());
    let mut set = parts[0].set.clone();
    set.created.clear();
    set.moved.clear();
    set.updated.clear();
    set.removed.clear();
    for p in parts {
        assert_eq!(
            (p.set.tick, p.set.baseline, p.set.checksum),
            (set.tick, set.baseline, set.checksum)
        );
        set.created.extend(p.set.created);
        set.moved.extend(p.set.moved);
        set.updated.extend(p.set.updated);
        set.removed.extend(p.set.removed);
    }
    normalise(set)
}

fn normalise(mut set: LimitedChangeSet) -> LimitedChangeSet {
    set.created.sort_by_key(|e| e.id);
    set.moved.sort_by_key(|m| m.id);
    set.updated.sort_by_key(|u| u.id);
    set.removed.sort();
    set
}

proptest! {
    #[test]
    fn packets_round_trip(set in change_set(), mtu in prop_oneof![Just(1200usize), 64usize..600]) {
        let packets = encode_packets(&set, mtu);
        prop_assert!(!packets.is_empty());
        prop_assert_eq!(decode_all(&packets), normalise(set));
    }

    #[test]
    fn packets_respect_the_mtu_unless_one_entity_is_bigger(set in change_set(), mtu in 200usize..1500) {
        for p in encode_packets(&set, mtu) {
            let part = decode_packet(&p).unwrap();
            let records = part.set.created.len() + part.set.moved.len() + part.set.updated.len() + part.set.removed.len();
            prop_assert!(p.len() <= mtu || records == 1, "{} bytes with {} records", p.len(), records);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_packet(&bytes);
        // With a valid version byte the decoder gets further in.
        let mut versioned = bytes.clone();
        versioned.insert(0, kasagi_replication::PROTOCOL_VERSION as u8);
        let _ = decode_packet(&versioned);
    }

    #[test]
    fn corrupted_packets_never_panic(set in change_set(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        for mut p in encode_packets(&set, 1200) {
            for &(at, xor) in &flips {
                let i = at % p.len();
                p[i] ^= xor;
            }
            let _ = decode_packet(&p);
            p.truncate(cut % (p.len() + 1));
            let _ = decode_packet(&p);
        }
    }
}

#[test]
fn hostile_counts_are_rejected_without_allocating() {
    // Version, header (tick 1, full, part 0 of 1, no checksum), then a claim of 2^62 created entities.
    let mut bytes = vec![kasagi_replication::PROTOCOL_VERSION as u8, 1, 0, 0, 1, 0];
    bytes.extend_from_slice(&[253]);
    bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(decode_packet(&bytes), Err(DecodeError::Count(_))));
}

#[test]
fn wrong_version_and_empty_input_are_typed_errors() {
    assert!(matches!(decode_packet(&[]), Err(DecodeError::Header(_))));
    assert!(matches!(
        decode_packet(&[0xee, 1, 2, 3]),
        Err(DecodeError::Version(0xee))
    ));
    let packets = encode_packets(
        &LimitedChangeSet {
            tick: 5,
            ..Default::default()
        },
        1200,
    );
    let mut trailing = packets[0].clone();
    trailing.push(0);
    assert!(matches!(
        decode_packet(&trailing),
        Err(DecodeError::TrailingBytes(1))
    ));
}

#[test]
fn a_small_move_costs_three_bytes() {
    // 100 entities with consecutive ids, each moving by under 60 quanta per axis.
    let base = LimitedChangeSet {
        tick: 1000,
        baseline: Some(999),
        ..Default::default()
    };
    let empty = encode_packets(&base, 1200)[0].len();
    let mut set = base.clone();
    set.moved = (0..100)
        .map(|i| Move {
            id: NetId(5_000 + i * 3),
            to: MoveTo::Delta(QPos {
                x: (i as i32 % 50) - 25,
                y: 17,
            }),
        })
        .collect();
    let full = encode_packets(&set, 1200)[0].len();
    // The first id costs more (absolute); every following one costs gap + dx + dy = 3 bytes.
    assert!(
        full - empty <= 100 * 3 + 3,
        "{} bytes for 100 moves",
        full - empty
    );
}

/// Component bytes as the server shares them.
fn shared(components: Vec<(u8, Vec<u8>)>) -> Vec<(u8, ComponentBytes)> {
    components.into_iter().map(|(i, b)| (i, b.into())).collect()
}
