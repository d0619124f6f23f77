//! The load scenarios of BENCHMARKS.md, defined once.

use clap::ValueEnum;
use serde::Serialize;

use crate::sim::Interest;

/// A named load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ScenarioName {
    /// Swarm of 1,000, a quarter moving, 16 clients seeing everything.
    S1,
    /// Swarm of 10,000, a tenth moving, 50 clients seeing everything.
    S2,
    /// As S2 with 200 clients, each seeing a radius of 100 around its avatar.
    #[serde(rename = "S2i")]
    S2i,
    /// The village, 50 clients: input → confirmed on another client.
    S4,
    /// The village, 1,000 clients over 20 rooms.
    S5,
    /// `kasagi sim` of the 10k village (no network).
    S7,
}

/// How a network scenario is set up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// World file.
    pub world: &'static str,
    /// Swarm size override.
    pub entities: Option<u32>,
    /// Swarm moving probability override.
    pub moving: Option<f32>,
    /// Interest override.
    pub interest: Option<Interest>,
    /// Clients in all.
    pub clients: u32,
    /// Rooms the clients spread over.
    pub rooms: u32,
    /// Clients send inputs and commands (else they only receive and acknowledge).
    pub active: bool,
    /// Measure input → confirmed on another client.
    pub remote_latency: bool,
}

/// One target of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured, as a key of the result.
    pub metric: &'static str,
    /// The limit.
    pub limit: f64,
    /// Whether the limit is an upper (`true`) or a lower bound.
    pub at_most: bool,
}

const fn at_most(metric: &'static str, limit: f64) -> Target {
    Target {
        metric,
        limit,
        at_most: true,
    }
}

impl ScenarioName {
    /// The network setup; `None` for S7, which runs no network.
    pub fn setup(self) -> Option<Setup> {
        let swarm = |entities, moving, interest, clients| Setup {
            world: "assets/worlds/swarm.ron",
            entities: Some(entities),
            moving: Some(moving),
            interest: Some(interest),
            clients,
            rooms: 1,
            active: false,
            remote_latency: false,
        };
        let village = |clients, rooms, remote_latency| Setup {
            world: "assets/worlds/village.ron",
            entities: None,
            moving: None,
            interest: None,
            clients,
            rooms,
            active: true,
            remote_latency,
        };
        Some(match self {
            Self::S1 => swarm(1_000, 0.25, Interest::Off, 16),
            Self::S2 => swarm(10_000, 0.1, Interest::Off, 50),
            Self::S2i => swarm(10_000, 0.1, Interest::Radius(100.0), 200),
            Self::S4 => village(50, 1, true),
            Self::S5 => village(1_000, 20, false),
            Self::S7 => return None,
        })
    }

    /// The targets of issue 6, in the units the result reports.
    pub fn targets(self) -> Vec<Target> {
        // One tick at 30 Hz plus 5 ms.
        let s4_latency = 1_000.0 / 30.0 + 5.0;
        match self {
            Self::S1 => vec![
                at_most("kb_per_client_per_sec", 24.0),
                at_most("tick_p50_ms", 1.0),
            ],
            Self::S2 => vec![
                at_most("kb_per_client_per_sec", 100.0),
                at_most("tick_p99_ms", 15.0),
                at_most("missed_tick_share", 0.001),
            ],
            Self::S2i => vec![at_most("tick_p99_ms", 10.0)],
            // Timed as a client alone on its machine would see it (arrival of
            // the confirming datagram plus its own processing), not when the
            // harness, serving 50 clients in turn, got round to reading it;
            // the harness-timed figure is reported next to it.
            Self::S4 => vec![at_most("remote_latency_at_arrival_p99_ms", s4_latency)],
            // A tick skipped because the room fell behind is as late as a tick
            // can be: it counts against the overrun target too.
            Self::S5 => vec![
                at_most("overrun_share", 0.001),
                at_most("missed_tick_share", 0.001),
                at_most("desyncs", 0.0),
            ],
            Self::S7 => vec![Target {
                metric: "ticks_per_sec",
                limit: 2_000.0,
                at_most: false,
            }],
        }
    }
}
