//! Kasagi's UDP transport: renet 2 channels over netcode, secure by default.
//!
//! * [`protocol`] — the messages and their channels: reliable-ordered
//!   `Control` for joins, full states, player joined/left and errors;
//!   unreliable `Changes`/`Stream` for per-tick change sets, inputs and acks.
//! * [`lane`] — the direct lane: unreliable messages in netcode payloads of
//!   their own, beside renet, which keeps the reliable channel.
//! * [`keys`] — the server's private key and connect tokens carrying a role.
//! * [`server::NetServer`] — the server transport.
//! * [`client::NetClient`], [`client::GameClient`] — the native client and a
//!   replicated session with its Connecting → Syncing → Synced → OutOfSync →
//!   Resyncing state machine.
//!
//! Rooms, sessions and game rules live in the server application; this crate
//! moves bytes and keeps the protocol honest.

#![warn(missing_docs)]

pub mod channels;
pub mod client;
pub mod keys;
pub mod lane;
pub mod protocol;
pub mod server;
mod udp;
