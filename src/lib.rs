//! Kasagi: a headless ECS game-simulation server with change-detection replication.
//!
//! A Kasagi server hosts *rooms*. Each [`room::Room`] is an actor owning its own
//! Bevy world and schedule, ticked at its own rate through the pipeline
//! Receive → Simulate → Replicate → Send → Persist ([`room::TickSet`]).
//! Game logic is plain ECS; the bundled example game is the [`sim`] village.
//!
//! See `ARCHITECTURE.md` for the design and `README.md` for how to run it.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod persist;
pub mod replication;
pub mod room;
pub mod serve;
pub mod sim;
