//! renet channel layout, the same on both ends.

use std::time::Duration;

use renet::{ChannelConfig, ConnectionConfig, SendType};

use crate::protocol::{ClientChannel, ServerChannel};

/// Memory a reliable server channel may hold unacknowledged; full states are
/// paced to stay below it (renet disconnects a client whose reliable channel overflows).
pub const RELIABLE_CHANNEL_BYTES: usize = 8 << 20;

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
                max_memory_usage_bytes: 1 << 20,
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
