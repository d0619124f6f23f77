//! The wire format of limited change sets, and of component values.
//!
//! Everything is bincode 2 with its standard configuration: little-endian,
//! variable-length integers (values below 251 take one byte), zigzag for
//! signed ones. On top of that:
//!
//! * entity ids are sorted and coded as the gap to the previous id of the same
//!   list, so a dense set of ids costs about a byte each;
//! * positions are integer quanta; a move is coded as the difference to the
//!   position the client has acknowledged when one is known, otherwise
//!   absolutely. Delta moves are bit-packed (Elias-gamma id gaps, deltas in
//!   the narrowest width of their section): about 19 bits per move in the
//!   swarm instead of 24;
//! * a change set larger than the MTU is split into *parts* at entity
//!   boundaries. A client applies a tick only when it holds every part, so a
//!   lost part costs the tick, never consistency — the next tick's change set
//!   carries the same changes again.
//!
//! Decoding is total: any byte string yields a packet or a [`DecodeError`],
//! never a panic, and allocation is bounded by [`MAX_PACKET_BYTES`].

mod moves;
mod packet;

pub use packet::{Packet, decode_packet, encode_packets, is_full_state};

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// The largest packet (and component value) a peer may send us.
pub const MAX_PACKET_BYTES: usize = 4 << 20;

/// The most parts one tick's change set may be split into.
pub const MAX_PARTS: u16 = 8192;

type WireConfig = Configuration<LittleEndian, Varint, Limit<MAX_PACKET_BYTES>>;

const fn config() -> WireConfig {
    bincode::config::standard().with_limit::<MAX_PACKET_BYTES>()
}

/// Why bytes could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes than any valid packet has.
    #[error("packet of {0} bytes exceeds the {MAX_PACKET_BYTES}-byte limit")]
    TooLarge(usize),
    /// The bytes end before the value does, or hold something that is not a value.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// Bytes are left over after the packet.
    #[error("{0} unexpected bytes after the packet")]
    TrailingBytes(usize),
    /// The packet was made by a different protocol version.
    #[error("protocol version {0} is not supported (expected {expected})", expected = crate::PROTOCOL_VERSION)]
    Version(u8),
    /// The header is inconsistent (part numbering, baseline after tick, …).
    #[error("invalid header: {0}")]
    Header(&'static str),
    /// A count claims more entries than there are bytes left.
    #[error("a count of {0} entries exceeds the bytes left")]
    Count(u64),
    /// Entity id gaps overflow.
    #[error("entity id overflow")]
    IdOverflow,
    /// A component index the registry does not know.
    #[error("unknown component index {0}")]
    UnknownComponent(u8),
    /// An entity referenced by a delta is not in the client's state.
    #[error("entity {0} is not known")]
    UnknownEntity(u64),
}

impl From<bincode::error::DecodeError> for DecodeError {
    fn from(e: bincode::error::DecodeError) -> Self {
        DecodeError::Malformed(e.to_string())
    }
}

/// Encodes one component value.
pub fn encode_component<C: Serialize>(value: &C) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail; an error here is a bug in a Serialize impl.
    bincode::serde::encode_to_vec(value, config()).unwrap_or_else(|e| {
        tracing::error!("component failed to serialize: {e}");
        Vec::new()
    })
}

/// [`encode_component`] into `buf` (cleared first), reusing its allocation.
pub fn encode_component_into<C: Serialize>(value: &C, buf: &mut Vec<u8>) {
    buf.clear();
    // Encoding plain data into a Vec cannot fail; an error here is a bug in a Serialize impl.
    if let Err(e) = bincode::serde::encode_into_std_write(value, buf, config()) {
        tracing::error!("component failed to serialize: {e}");
        buf.clear();
    }
}

/// Decodes one component value; all bytes must be consumed.
pub fn decode_component<C: DeserializeOwned>(bytes: &[u8]) -> Result<C, DecodeError> {
    if bytes.len() > MAX_PACKET_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}
