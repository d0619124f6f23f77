//! Packets: one part of one tick's limited change set.

use serde::{Deserialize, Serialize};

use super::moves::{self, DeltaMoves};
use super::{DecodeError, MAX_PACKET_BYTES, MAX_PARTS, config};
use crate::change_set::{
    ComponentBytes, EntityState, EntityUpdate, LimitedChangeSet, Move, MoveTo, QPos,
};
use crate::net_id::{KindId, NetId};
use crate::registry::PROTOCOL_VERSION;

/// One decoded packet: part `part` of `parts` of the change set for `set.tick`.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    /// Zero-based part number.
    pub part: u16,
    /// How many parts the tick's change set has.
    pub parts: u16,
    /// This part's share of the change set (header fields are repeated in every part).
    pub set: LimitedChangeSet,
}

#[derive(Serialize, Deserialize)]
struct Header {
    tick: u64,
    /// `tick - baseline`, or 0 for a full state.
    baseline_lag: u64,
    part: u16,
    parts: u16,
    checksum: Option<u64>,
}

/// Room for the version byte and the largest header.
const HEADER_MAX: usize = 1 + 9 + 9 + 3 + 3 + 10;

/// A created entity on the wire. `C` is [`WireValues`] when encoding (no copy
/// of the shared component bytes) and [`WireComponents`] when decoding.
#[derive(Serialize, Deserialize)]
struct WireCreate<C> {
    gap: u64,
    kind: u16,
    pos: Option<(i32, i32)>,
    components: C,
}

/// An updated entity on the wire; `C` as in [`WireCreate`].
#[derive(Serialize, Deserialize)]
struct WireUpdate<C> {
    gap: u64,
    set: C,
    unset: u64,
}

/// Component values as encoded: each `(index, bytes)`, the bytes as one
/// byte string. That is the coding a sequence of `u8` has (a length, then the
/// bytes), but serde writes it in one piece instead of a byte at a time, and
/// every packet of every client carries them.
struct WireValues<'a>(&'a [(u8, ComponentBytes)]);

impl Serialize for WireValues<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|(index, bytes)| (index, serde_bytes::Bytes::new(bytes))),
        )
    }
}

/// Component values as decoded: borrowed from the packet, then copied once
/// into their shared buffers (see [`owned`]).
type WireComponents<'a> = Vec<(u8, &'a [u8])>;

fn owned(components: WireComponents) -> Vec<(u8, ComponentBytes)> {
    components
        .into_iter()
        .map(|(index, bytes)| (index, ComponentBytes::from(bytes)))
        .collect()
}

const SECTIONS: usize = 5;
const CREATED: usize = 0;
const MOVED_DELTA: usize = 1;
const MOVED_ABS: usize = 2;
const UPDATED: usize = 3;
const REMOVED: usize = 4;

/// A part being filled: per section, its record count, bytes and last id
/// (delta moves are bit-packed when the part is written, see [`moves`]).
#[derive(Default)]
struct PartBuilder {
    counts: [u64; SECTIONS],
    bytes: [Vec<u8>; SECTIONS],
    last_id: [Option<u64>; SECTIONS],
    deltas: DeltaMoves,
}

impl PartBuilder {
    fn gap(&self, section: usize, id: u64) -> u64 {
        self.last_id[section].map_or(id, |last| id - last)
    }

    fn size(&self) -> usize {
        self.size_besides_deltas() + self.deltas.size()
    }

    /// The size of every section but the delta moves, counts included.
    fn size_besides_deltas(&self) -> usize {
        self.bytes.iter().map(Vec::len).sum::<usize>() + SECTIONS * 9
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }
}

/// Appends one byte-coded record to the last part, opening a new part when
/// the record would push it past `budget`. Records are encoded straight into
/// the part (and taken back if they do not fit): no buffer per record.
fn push(
    parts: &mut Vec<PartBuilder>,
    budget: usize,
    section: usize,
    id: u64,
    encode: &dyn Fn(u64, &mut Vec<u8>),
) {
    let mut part = parts.last_mut().expect("at least one part");
    let size = part.size();
    if part.bytes[section].capacity() == 0 {
        // A section fills toward the budget: one allocation of that, rather
        // than growing from 8 bytes by doubling (a reallocation and a copy
        // each time, for every section of every part of every client).
        part.bytes[section].reserve(budget);
    }
    let start = part.bytes[section].len();
    encode(part.gap(section, id), &mut part.bytes[section]);
    let record = part.bytes[section].len() - start;
    if !part.is_empty() && size + record > budget {
        part.bytes[section].truncate(start);
        parts.push(PartBuilder::default());
        part = parts.last_mut().expect("just pushed");
        part.bytes[section].reserve(budget);
        encode(part.gap(section, id), &mut part.bytes[section]);
    }
    part.counts[section] += 1;
    part.last_id[section] = Some(id);
}

/// Encodes a change set into packets of at most `mtu` bytes each (a single
/// entity larger than the MTU gets a packet of its own). Always at least one packet.
pub fn encode_packets(set: &LimitedChangeSet, mtu: usize) -> Vec<Vec<u8>> {
    let budget = mtu.saturating_sub(HEADER_MAX).max(1);
    let mut parts: Vec<PartBuilder> = vec![PartBuilder::default()];

    for e in sorted(&set.created, |e| e.id) {
        push(&mut parts, budget, CREATED, e.id.0, &|gap, out| {
            let pos = e.position.map(|p| (p.x, p.y));
            let create = WireCreate {
                gap,
                kind: e.kind.0,
                pos,
                components: WireValues(&e.components),
            };
            encode_into(&create, out);
        });
    }
    let mut last_delta = None;
    for m in sorted(&set.moved, |m| m.id) {
        match m.to {
            MoveTo::Delta(d) => {
                // Ids within a section must increase; a repeated id is a malformed set.
                if last_delta.is_some_and(|last| last >= m.id.0) {
                    continue;
                }
                last_delta = Some(m.id.0);
                let mut part = parts.last_mut().expect("at least one part");
                let room = if part.is_empty() {
                    usize::MAX
                } else {
                    budget.saturating_sub(part.size_besides_deltas())
                };
                if !part.deltas.push_within(m.id.0, d.x, d.y, room) {
                    parts.push(PartBuilder::default());
                    part = parts.last_mut().expect("just pushed");
                    part.deltas.push_within(m.id.0, d.x, d.y, usize::MAX);
                }
                part.counts[MOVED_DELTA] += 1;
            }
            MoveTo::Absolute(p) => push(&mut parts, budget, MOVED_ABS, m.id.0, &|gap, out| {
                encode_into(&(gap, p.x, p.y), out)
            }),
        }
    }
    for u in sorted(&set.updated, |u| u.id) {
        push(&mut parts, budget, UPDATED, u.id.0, &|gap, out| {
            let update = WireUpdate {
                gap,
                set: WireValues(&u.set),
                unset: u.unset,
            };
            encode_into(&update, out);
        });
    }
    let mut removed = set.removed.clone();
    removed.sort_unstable();
    removed.dedup();
    for id in removed {
        push(&mut parts, budget, REMOVED, id.0, &|gap, out| {
            encode_into(&gap, out)
        });
    }

    let count = parts.len().min(usize::from(MAX_PARTS)) as u16;
    if parts.len() > usize::from(MAX_PARTS) {
        tracing::error!(
            parts = parts.len(),
            "change set too large; truncated to {MAX_PARTS} parts"
        );
        parts.truncate(usize::from(MAX_PARTS));
    }
    let baseline_lag = set
        .baseline
        .map_or(0, |b| set.tick.saturating_sub(b).max(1));
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut out = Vec::with_capacity(HEADER_MAX + part.size());
            out.push(PROTOCOL_VERSION as u8);
            let header = Header {
                tick: set.tick,
                baseline_lag,
                part: i as u16,
                parts: count,
                checksum: set.checksum,
            };
            encode_into(&header, &mut out);
            for s in 0..SECTIONS {
                encode_into(&part.counts[s], &mut out);
                if s == MOVED_DELTA {
                    part.deltas.write(&mut out, |v, out| encode_into(&v, out));
                } else {
                    out.extend_from_slice(&part.bytes[s]);
                }
            }
            out
        })
        .collect()
}

/// Decodes one packet. Total: never panics, allocates at most in proportion to `bytes`.
pub fn decode_packet(bytes: &[u8]) -> Result<Packet, DecodeError> {
    if bytes.len() > MAX_PACKET_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (header, mut rest) = read_header(bytes)?;
    if header.parts == 0 || header.parts > MAX_PARTS || header.part >= header.parts {
        return Err(DecodeError::Header("part number out of range"));
    }
    if header.baseline_lag > header.tick {
        return Err(DecodeError::Header("baseline before tick 0"));
    }
    let mut set = LimitedChangeSet {
        tick: header.tick,
        baseline: (header.baseline_lag > 0).then(|| header.tick - header.baseline_lag),
        checksum: header.checksum,
        ..LimitedChangeSet::default()
    };

    let mut ids = IdDecoder::default();
    for _ in 0..take_count(&mut rest)? {
        let c: WireCreate<WireComponents> = take(&mut rest)?;
        set.created.push(EntityState {
            id: ids.next(c.gap)?,
            kind: KindId(c.kind),
            position: c.pos.map(|(x, y)| QPos { x, y }),
            components: owned(c.components),
        });
    }
    let count: u64 = take(&mut rest)?;
    if count > 0 {
        let first: u64 = take(&mut rest)?;
        for (id, dx, dy) in moves::read(&mut rest, count, first)? {
            set.moved.push(Move {
                id: NetId(id),
                to: MoveTo::Delta(QPos { x: dx, y: dy }),
            });
        }
    }
    let mut ids = IdDecoder::default();
    for _ in 0..take_count(&mut rest)? {
        let (gap, x, y): (u64, i32, i32) = take(&mut rest)?;
        set.moved.push(Move {
            id: ids.next(gap)?,
            to: MoveTo::Absolute(QPos { x, y }),
        });
    }
    let mut ids = IdDecoder::default();
    for _ in 0..take_count(&mut rest)? {
        let u: WireUpdate<WireComponents> = take(&mut rest)?;
        set.updated.push(EntityUpdate {
            id: ids.next(u.gap)?,
            set: owned(u.set),
            unset: u.unset,
        });
    }
    let mut ids = IdDecoder::default();
    for _ in 0..take_count(&mut rest)? {
        let gap: u64 = take(&mut rest)?;
        set.removed.push(ids.next(gap)?);
    }
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(Packet {
        part: header.part,
        parts: header.parts,
        set,
    })
}

/// Reads only the header: whether the packet is part of a full state.
/// Transports use it to route full states to a reliable channel.
pub fn is_full_state(bytes: &[u8]) -> Result<bool, DecodeError> {
    Ok(read_header(bytes)?.0.baseline_lag == 0)
}

/// Checks the version byte and reads the header; returns it with the bytes after it.
fn read_header(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    let (&version, mut rest) = bytes
        .split_first()
        .ok_or(DecodeError::Header("empty packet"))?;
    if version != PROTOCOL_VERSION as u8 {
        return Err(DecodeError::Version(version));
    }
    let header: Header = take(&mut rest)?;
    Ok((header, rest))
}

/// Rebuilds absolute ids from gaps, rejecting overflow and non-increasing ids.
#[derive(Default)]
struct IdDecoder {
    last: Option<u64>,
}

impl IdDecoder {
    fn next(&mut self, gap: u64) -> Result<NetId, DecodeError> {
        let id = match self.last {
            None => gap,
            Some(_) if gap == 0 => return Err(DecodeError::Header("duplicate entity id")),
            Some(last) => last.checked_add(gap).ok_or(DecodeError::IdOverflow)?,
        };
        self.last = Some(id);
        Ok(NetId(id))
    }
}

/// Appends `value`'s encoding to `out` (writing to a `Vec` cannot fail).
fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let _ = bincode::serde::encode_into_std_write(value, out, config());
}

fn take<'a, T: Deserialize<'a>>(rest: &mut &'a [u8]) -> Result<T, DecodeError> {
    let (value, used) = bincode::serde::borrow_decode_from_slice(rest, config())?;
    *rest = &rest[used..];
    Ok(value)
}

/// A record count; every record takes at least one byte, so a count above the
/// bytes left is a lie and is rejected before any work is done.
fn take_count(rest: &mut &[u8]) -> Result<u64, DecodeError> {
    let n: u64 = take(rest)?;
    if n > rest.len() as u64 {
        return Err(DecodeError::Count(n));
    }
    Ok(n)
}

fn sorted<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by_key(|t| key(t));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Component values went through serde as sequences of `u8`; as byte
    /// strings they must keep exactly that coding, or old and new peers
    /// would disagree.
    #[test]
    fn component_values_keep_the_sequence_coding() {
        let values: Vec<(u8, ComponentBytes)> = vec![
            (0, ComponentBytes::from(&[][..])),
            (3, ComponentBytes::from(&[1, 2, 250, 251, 255][..])),
            (7, (0..=255).collect::<Vec<u8>>().into()),
        ];
        let as_sequences = bincode::serde::encode_to_vec(&values, config()).unwrap();
        let as_strings = bincode::serde::encode_to_vec(WireValues(&values), config()).unwrap();
        assert_eq!(as_strings, as_sequences);
        let mut rest = &as_strings[..];
        let decoded: WireComponents = take(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(owned(decoded), values);
    }
}
