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
/// and the bytes of each visible component, in registry order.
pub fn entity_hash<'a>(
    id: NetId,
    kind: KindId,
    position: Option<QPos>,
    components: impl IntoIterator<Item = (u8, &'a [u8])>,
) -> u64 {
    let mut h = Xxh3::new();
    h.update(&id.0.to_le_bytes());
    h.update(&kind.0.to_le_bytes());
    match position {
        Some(p) => {
            h.update(&[1]);
            h.update(&p.x.to_le_bytes());
            h.update(&p.y.to_le_bytes());
        }
        None => h.update(&[0]),
    }
    for (index, bytes) in components {
        h.update(&[index]);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.digest()
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
