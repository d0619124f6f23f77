//! The messages clients and servers exchange, their channels and their encoding.
//!
//! Every message is one bincode-2 value on one renet channel. Decoding is
//! total and bounded: a peer's bytes yield a message or a [`ProtocolError`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Netcode protocol id: clients of another protocol cannot even connect.
///
/// v2: stream messages travel on the direct lane ([`crate::lane`]), which a
/// v1 peer's renet would reject as malformed packets.
/// v3: an entity's checksum hash covers a digest of its components
/// (`kasagi_replication::checksum::components_digest`), so a v2 peer's
/// checksums would never match.
pub const PROTOCOL_ID: u64 = 0x4b41_5341_4749_0003; // "KASAGI" v3

/// The largest message a peer may send.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The longest room name.
pub const MAX_ROOM_NAME: usize = 64;

/// Server → client channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ServerChannel {
    /// Reliable, ordered: join results, full states, player joined/left, command acks, errors.
    Control = 0,
    /// Unreliable: per-tick change sets.
    Changes = 1,
}

/// Client → server channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientChannel {
    /// Reliable, ordered: join, leave, commands, sync requests.
    Control = 0,
    /// Unreliable: inputs and acks, which the next one supersedes.
    Stream = 1,
}

impl From<ServerChannel> for u8 {
    fn from(c: ServerChannel) -> u8 {
        c as u8
    }
}

impl From<ClientChannel> for u8 {
    fn from(c: ClientChannel) -> u8 {
        c as u8
    }
}

/// A resumable session: returned on join, presented again to reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionToken(pub [u8; 16]);

/// What a client says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Enter a room; `registry_hash` must equal the server's replication protocol hash.
    Join {
        /// The room (world) name.
        room: String,
        /// The client's [`kasagi_replication::ReplicationRegistry::protocol_hash`].
        registry_hash: u64,
        /// A session to resume, if reconnecting.
        session: Option<SessionToken>,
    },
    /// Leave the room for good.
    Leave,
    /// Movement intent for the client's own player.
    Input {
        /// The newest server tick the client has applied.
        tick: u64,
        /// Increases with every input the client sends.
        sequence: u32,
        /// Desired direction, each axis in [-1, 1].
        movement: [f32; 2],
        /// An optional action code (game-defined).
        action: Option<u8>,
    },
    /// Acknowledges the newest applied change-set tick.
    Ack {
        /// The tick.
        tick: u64,
    },
    /// The client holds tick `holds` and could not apply the change set of
    /// `tick`: a link of its chain of deltas was lost. The server repairs the
    /// chain (see `ReplicationServer::receive_missing_baseline`).
    MissingBaseline {
        /// The tick the client holds.
        holds: u64,
        /// The change set it could not apply.
        tick: u64,
    },
    /// Asks for a full state (after a checksum mismatch).
    SyncRequest,
    /// A command; retried with the same id until acknowledged, applied at most once.
    Command(Command),
    /// Asks for the room's persisted changes of ticks `from..=to` (at most
    /// [`MAX_HISTORY_TICKS`] of them): the store's read API over the protocol,
    /// for clients and tools that need what they missed.
    FetchHistory {
        /// The first tick wanted.
        from: u64,
        /// The last tick wanted.
        to: u64,
    },
}

/// The most ticks one [`ClientMessage::FetchHistory`] answers with (three
/// seconds at 30 Hz): the server reads them on its persistence writer's
/// thread, so one request must not hold up writing for long.
pub const MAX_HISTORY_TICKS: u64 = 90;

/// One persisted tick in a [`ServerMessage::History`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTick {
    /// The newest tick the change set covers.
    pub tick: u64,
    /// The first tick it covers (below `tick` when the server coalesced ticks).
    pub from: u64,
    /// The world-visible change set (a `kasagi_replication::FullChangeSet`
    /// without private components or old values), encoded with
    /// `kasagi_replication::codec::encode_component`; see [`HistoryTick::decode`].
    #[serde(with = "serde_bytes")]
    pub changes: Vec<u8>,
}

impl HistoryTick {
    /// Decodes the change set, with the codec's bounds.
    pub fn decode(
        &self,
    ) -> Result<kasagi_replication::FullChangeSet, kasagi_replication::codec::DecodeError> {
        kasagi_replication::codec::decode_component(&self.changes)
    }
}

/// A request with an effect, identified so that retries are applied once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// A random 128-bit id (UUID v4 layout); retries reuse it.
    pub id: [u8; 16],
    /// Increases with every new command of the client.
    pub sequence: u32,
    /// What to do: `act` (anyone: an action of the own player), or `spawn`,
    /// `despawn`, `teleport`, `set_field` (game masters only).
    pub kind: String,
    /// The command's arguments, bincode-encoded (see [`CommandArgs`]).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// For `set_field`: apply only if the field is still at this version.
    pub expected_version: Option<u64>,
}

/// Arguments of the built-in commands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandArgs {
    /// The own player performs an action (game-defined code) exactly once.
    Act {
        /// The action code.
        action: u8,
    },
    /// Spawn an entity of `kind` (`npcs`) at a position.
    Spawn {
        /// The kind.
        kind: String,
        /// Where.
        at: [f32; 2],
    },
    /// Despawn an entity.
    Despawn {
        /// The entity.
        entity: u64,
    },
    /// Move an entity to a position.
    Teleport {
        /// The entity.
        entity: u64,
        /// Where.
        to: [f32; 2],
    },
    /// Set a numeric field such as `resource_node.amount`.
    SetField {
        /// The entity.
        entity: u64,
        /// The field path.
        field: String,
        /// The new value.
        value: f64,
    },
}

/// What became of a command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// It took effect (now, or the first time this id was seen).
    Applied {
        /// For `set_field`: the field's new version.
        version: Option<u64>,
    },
    /// The client's role may not run it.
    Forbidden,
    /// The arguments are unusable.
    Invalid(String),
}

/// Why the server refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The message could not be decoded.
    Malformed,
    /// The client's replication registry differs from the server's.
    ProtocolMismatch,
    /// The room name is not acceptable.
    BadRoom,
    /// The client must join a room first.
    NotInRoom,
    /// The client sent too much, too fast.
    RateLimited,
    /// The session token is unknown or expired.
    BadSession,
    /// The client's role may not do that.
    Forbidden,
    /// The room cannot start now (its persisted state is unreadable or the
    /// store is unreachable); the server log says why.
    RoomUnavailable,
}

/// What the server says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The join succeeded.
    Joined {
        /// The room joined.
        room: String,
        /// The client's player entity.
        player: u64,
        /// Present it to resume after a disconnect.
        session: SessionToken,
        /// The room's tick at join time.
        tick: u64,
    },
    /// A replication packet of a full state (reliable channel).
    FullState(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A replication packet of a per-tick change set (unreliable channel).
    Changes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The newest input the room has applied for this client (unreliable, per tick):
    /// the client drops older inputs from its prediction replay.
    InputAck {
        /// The input's sequence number.
        sequence: u32,
        /// The tick whose simulation applied it.
        tick: u64,
    },
    /// Another player entered the room.
    PlayerJoined {
        /// Its player entity.
        player: u64,
    },
    /// A player left the room.
    PlayerLeft {
        /// Its player entity.
        player: u64,
    },
    /// The outcome of a command; ends the client's retries.
    CommandAck {
        /// The command id.
        id: [u8; 16],
        /// What happened.
        outcome: CommandOutcome,
    },
    /// A `set_field` with a stale `expected_version`: nothing changed; here is the current value.
    Conflict {
        /// The command id.
        id: [u8; 16],
        /// The field.
        field: String,
        /// Its current version.
        version: u64,
        /// Its current value.
        value: f64,
    },
    /// The answer to [`ClientMessage::FetchHistory`]: the persisted ticks of the
    /// range that have not expired, oldest first (reliable channel). Ticks the
    /// server coalesced come as one [`HistoryTick`]; one that covers the
    /// range's last tick comes whole, so its `tick` may lie beyond `to`.
    History {
        /// The range asked for (clamped to [`MAX_HISTORY_TICKS`]).
        from: u64,
        /// Its last tick.
        to: u64,
        /// What the store holds of it.
        ticks: Vec<HistoryTick>,
    },
    /// A request was refused.
    Error {
        /// What kind of refusal.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
    },
}

impl ServerMessage {
    /// The channel this message travels on.
    pub fn channel(&self) -> ServerChannel {
        match self {
            ServerMessage::Changes(_) | ServerMessage::InputAck { .. } => ServerChannel::Changes,
            _ => ServerChannel::Control,
        }
    }
}

impl ClientMessage {
    /// The channel this message travels on.
    pub fn channel(&self) -> ClientChannel {
        match self {
            ClientMessage::Input { .. }
            | ClientMessage::Ack { .. }
            | ClientMessage::MissingBaseline { .. } => ClientChannel::Stream,
            _ => ClientChannel::Control,
        }
    }
}

/// Why bytes are not a message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// Not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_MESSAGE_BYTES>,
>;

const fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Encodes a message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(message, config()).unwrap_or_default()
}

/// Decodes a message; all bytes must belong to it.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtocolError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge(bytes.len()));
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(ProtocolError::Malformed(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = ClientMessage::Join {
            room: "village".into(),
            registry_hash: 42,
            session: Some(SessionToken([7; 16])),
        };
        assert_eq!(decode::<ClientMessage>(&encode(&m)).unwrap(), m);
        let s = ServerMessage::Changes(vec![1, 2, 3]);
        assert_eq!(decode::<ServerMessage>(&encode(&s)).unwrap(), s);
        assert_eq!(s.channel(), ServerChannel::Changes);
    }

    /// Payloads are written as one byte string (`serde_bytes`), not byte by
    /// byte, and that must not change the wire: a byte string and a sequence
    /// of `u8` have the same bincode coding (length, then the bytes).
    #[test]
    fn payload_bytes_keep_the_sequence_coding() {
        let payload: Vec<u8> = (0..=255).collect();
        let as_sequence = encode(&payload);
        for message in [
            ServerMessage::Changes(payload.clone()),
            ServerMessage::FullState(payload.clone()),
        ] {
            let bytes = encode(&message);
            // One byte of variant index, then the payload as a sequence.
            assert_eq!(&bytes[1..], &as_sequence[..]);
            assert_eq!(decode::<ServerMessage>(&bytes).unwrap(), message);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<ClientMessage>(&bytes);
            let _ = decode::<ServerMessage>(&bytes);
        }
    }
}
