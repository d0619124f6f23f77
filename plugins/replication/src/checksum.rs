//! Checksums of a client's visible state, computed identically on both ends.
//!
//! A state checksum is order-independent: the wrapping sum of one hash per
//! entity, finished with the entity count. The server keeps each entity's hash
//! up to date as it changes, so a checksum costs one addition per visible
//! entity; the client computes the same sum over its replica.

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::change_set::QPos;
use crate::net_id::{KindId, NetId};

/// The hash of one entity as a client sees it: id, kind, quantized position
/// and the [`components_digest`] of its visible components.
pub fn entity_hash<'a>(
    id: NetId,
    kind: KindId,
    position: Option<QPos>,
    components: impl IntoIterator<Item = (u8, &'a [u8])>,
) -> u64 {
    entity_hash_of_digest(id, kind, position, components_digest(components))
}

/// The part of [`entity_hash`] that covers the components: the index, length
/// and bytes of each, in registry order.
///
/// A separate digest because most changes are moves: the server keeps each
/// entity's digest and rehashes a moved entity from it, where reading the
/// component values again cost a cache miss per component.
pub fn components_digest<'a>(components: impl IntoIterator<Item = (u8, &'a [u8])>) -> u64 {
    let mut h = HashInput::default();
    for (index, bytes) in components {
        h.put([index]);
        h.put((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.digest()
}

/// [`entity_hash`] from the entity's [`components_digest`].
pub fn entity_hash_of_digest(id: NetId, kind: KindId, position: Option<QPos>, digest: u64) -> u64 {
    // A fixed layout (id, kind, a position tag and the position if any, the
    // digest) in an array of its own: a `HashInput` zeroed its whole buffer
    // and was moved to be digested, a `memcpy` call and most of the cost of
    // rehashing a moved entity.
    let mut bytes = [0u8; 27];
    bytes[..8].copy_from_slice(&id.0.to_le_bytes());
    bytes[8..10].copy_from_slice(&kind.0.to_le_bytes());
    let len = match position {
        Some(p) => {
            bytes[10] = 1;
            bytes[11..15].copy_from_slice(&p.x.to_le_bytes());
            bytes[15..19].copy_from_slice(&p.y.to_le_bytes());
            19
        }
        None => 11,
    };
    bytes[len..len + 8].copy_from_slice(&digest.to_le_bytes());
    xxh3_64(&bytes[..len + 8])
}

/// Stack bytes for one entity's hash input; larger entities spill.
const HASH_BUFFER: usize = 192;

/// The bytes of one entity hash, gathered on the stack and hashed in one call:
/// a typical entity is well under the buffer, and one-shot XXH3 over a short
/// input is several times cheaper than feeding a streaming state piece by
/// piece. Larger inputs spill into the streaming state, which hashes to the
/// same value. Fixed-size pieces (ids, lengths, tags) are written with
/// [`HashInput::put`], whose constant length compiles to plain stores: a
/// `memcpy` call per piece was 8 % of the S4 room thread.
struct HashInput {
    buf: [u8; HASH_BUFFER],
    len: usize,
    spilled: Option<Xxh3>,
}

impl Default for HashInput {
    fn default() -> Self {
        Self {
            buf: [0; HASH_BUFFER],
            len: 0,
            spilled: None,
        }
    }
}

impl HashInput {
    /// Appends a fixed-size piece.
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) {
        if self.len + N <= self.buf.len() {
            self.buf[self.len..self.len + N].copy_from_slice(&bytes);
            self.len += N;
        } else {
            self.update(&bytes);
        }
    }

    /// Appends a piece of any length.
    fn update(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() <= self.buf.len() {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
            return;
        }
        let state = self.spilled.get_or_insert_with(Xxh3::new);
        state.update(&self.buf[..self.len]);
        state.update(bytes);
        self.len = 0;
    }

    fn digest(self) -> u64 {
        match self.spilled {
            None => xxh3_64(&self.buf[..self.len]),
            Some(mut state) => {
                state.update(&self.buf[..self.len]);
                state.digest()
            }
        }
    }
}

/// Accumulates entity hashes into a state checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateChecksum {
    sum: u64,
    count: u64,
}

impl StateChecksum {
    /// Adds one entity's hash.
    pub fn add(&mut self, entity_hash: u64) {
        self.sum = self.sum.wrapping_add(entity_hash);
        self.count += 1;
    }

    /// Takes back a hash added before, so that a running checksum can follow
    /// entities leaving a view or changing without summing everything again.
    pub fn remove(&mut self, entity_hash: u64) {
        self.sum = self.sum.wrapping_sub(entity_hash);
        self.count = self.count.wrapping_sub(1);
    }

    /// The final checksum.
    pub fn finish(self) -> u64 {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.sum.to_le_bytes());
        bytes[8..].copy_from_slice(&self.count.to_le_bytes());
        xxh3_64(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash as defined: XXH3 of the entity's fixed fields and XXH3 of
    /// its concatenated components, each in one piece.
    fn reference(id: NetId, kind: KindId, position: Option<QPos>, comps: &[(u8, Vec<u8>)]) -> u64 {
        let mut components = Vec::new();
        for (i, b) in comps {
            components.push(*i);
            components.extend((b.len() as u64).to_le_bytes());
            components.extend(b);
        }
        let mut bytes = [id.0.to_le_bytes().as_slice(), &kind.0.to_le_bytes()].concat();
        match position {
            Some(p) => bytes.extend([&[1][..], &p.x.to_le_bytes(), &p.y.to_le_bytes()].concat()),
            None => bytes.push(0),
        }
        bytes.extend(xxh3_64(&components).to_le_bytes());
        xxh3_64(&bytes)
    }

    #[test]
    fn buffered_hash_equals_one_shot_at_every_size() {
        let position = Some(QPos { x: -3, y: 70_000 });
        // Small entities stay in the buffer; larger ones spill once, several times,
        // or with a single component bigger than the buffer.
        for sizes in [
            &[][..],
            &[2, 8],
            &[100, 100],
            &[60; 9],
            &[200; 9],
            &[HASH_BUFFER],
            &[3 * HASH_BUFFER],
            &[5, HASH_BUFFER / 2, 5, HASH_BUFFER / 2, 5],
        ] {
            let comps: Vec<(u8, Vec<u8>)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (i as u8, (0..n).map(|b| (b * 7 + i) as u8).collect()))
                .collect();
            let borrowed = comps.iter().map(|(i, b)| (*i, b.as_slice()));
            assert_eq!(
                entity_hash(NetId(9), KindId(2), position, borrowed.clone()),
                reference(NetId(9), KindId(2), position, &comps),
                "sizes {sizes:?}"
            );
            assert_eq!(
                entity_hash(NetId(9), KindId(2), None, borrowed),
                reference(NetId(9), KindId(2), None, &comps),
                "sizes {sizes:?}, no position"
            );
        }
        assert_ne!(
            entity_hash(NetId(9), KindId(2), None, []),
            entity_hash(NetId(9), KindId(2), position, [])
        );
    }
}
