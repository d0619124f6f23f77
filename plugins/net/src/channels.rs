//! renet channel layout, the same on both ends.

use std::time::Duration;

use renet::{ChannelConfig, ConnectionConfig, SendType};

use crate::protocol::{ClientChannel, ServerChannel};

/// Memory a reliable server channel may hold, on the sending end (unacknowledged)
/// and on the receiving end (unread, or held back behind a lost message). renet
/// disconnects a peer whose reliable channel overflows.
pub const RELIABLE_CHANNEL_BYTES: usize = 64 << 20;

/// Reliable bytes the server keeps in flight per client. Far below
/// [`RELIABLE_CHANNEL_BYTES`] because acknowledged messages stop counting on the
/// sending end while the receiver may still hold them behind a gap.
pub const RELIABLE_IN_FLIGHT_BYTES: usize = 4 << 20;

/// Memory the client's reliable channel may hold (see [`RELIABLE_CHANNEL_BYTES`]).
pub const CLIENT_RELIABLE_CHANNEL_BYTES: usize = 1 << 20;

/// How often renet flushes a connection while reliable traffic needs acks
/// or resends (see [`crate::lane::AckDuty`]).
///
/// renet answers every flush with an ack packet for as long as it has
/// unconfirmed acks, and a peer's acks are only confirmed by the other side's
/// acks, so flushing on every loop iteration (the server polls every
/// millisecond) turned into a ping-pong of ack packets: measured at 800
/// datagrams per second per client. Acks of reliable messages can wait this
/// long and still arrive long before renet's 150 ms resend. (Before the
/// direct lane, every connection flushed at this interval whether or not it
/// had reliable traffic; S4 measured 93 → 69 datagrams per client per second
/// at 50 ms instead of 25.)
pub const IDLE_FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// The connection configuration used by servers and clients.
pub fn connection_config() -> ConnectionConfig {
    let reliable = SendType::ReliableOrdered {
        resend_time: Duration::from_millis(150),
    };
    ConnectionConfig {
        available_bytes_per_tick: 250_000,
        server_channels_config: vec![
            ChannelConfig {
                channel_id: ServerChannel::Control.into(),
                max_memory_usage_bytes: RELIABLE_CHANNEL_BYTES,
                send_type: reliable.clone(),
            },
            ChannelConfig {
                channel_id: ServerChannel::Changes.into(),
                max_memory_usage_bytes: 4 << 20,
                send_type: SendType::Unreliable,
            },
        ],
        client_channels_config: vec![
            ChannelConfig {
                channel_id: ClientChannel::Control.into(),
                max_memory_usage_bytes: CLIENT_RELIABLE_CHANNEL_BYTES,
                send_type: reliable,
            },
            ChannelConfig {
                channel_id: ClientChannel::Stream.into(),
                max_memory_usage_bytes: 1 << 20,
                send_type: SendType::Unreliable,
            },
        ],
    }
}
