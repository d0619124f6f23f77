//! `kasagi sim`: a headless, as-fast-as-possible simulation run.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::CliError;
use super::world_flags::WorldFlags;
use crate::room::{Pace, Room, TickDriver};
use crate::sim::{self, Kind, ScriptedPlayers, VillagePlugin, WorldDef};

/// The most ticks one run may ask for (about 1.6 years of 30 Hz simulation time).
pub const MAX_TICKS: u64 = 1_500_000_000;

/// Arguments of `kasagi sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// World definition file (RON).
    #[arg(long, value_name = "PATH", default_value = "assets/worlds/village.ron")]
    pub world: PathBuf,
    /// How many ticks to simulate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_TICKS))]
    pub ticks: u64,
    /// Overrides of the world file.
    #[command(flatten)]
    pub overrides: WorldFlags,
    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// What a simulation run reports; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct SimSummary {
    /// The world's name.
    pub world: String,
    /// The seed used.
    pub seed: u64,
    /// Ticks simulated.
    pub ticks: u64,
    /// The world's tick rate (simulation time per tick is `1 / tick_hz`).
    pub tick_hz: u32,
    /// Entities in the world at the end.
    pub entities: u64,
    /// Entities per kind at the end.
    pub entities_by_kind: KindCounts,
    /// Wall-clock throughput.
    pub ticks_per_sec: f64,
    /// How many times faster than real time the run was.
    pub realtime_factor: f64,
    /// Median wall time of one tick, µs.
    pub tick_p50_us: f64,
    /// 99th percentile wall time of one tick, µs.
    pub tick_p99_us: f64,
    /// Longest tick, µs.
    pub tick_max_us: f64,
    /// Wall time of the whole run, s.
    pub elapsed_sec: f64,
    /// Canonical hash of the final state, 16 hex digits.
    pub state_hash: String,
}

pub(super) fn run(args: &SimArgs) -> Result<(), CliError> {
    let mut def = WorldDef::load(&args.world).map_err(|e| CliError::Usage(e.to_string()))?;
    args.overrides.apply(&mut def)?;
    let summary = simulate(
        &def,
        args.ticks,
        !args.json && std::io::stderr().is_terminal(),
    );
    if args.json {
        let line = serde_json::to_string(&summary).map_err(anyhow::Error::from)?;
        println!("{line}");
    } else {
        print_human(&summary);
    }
    Ok(())
}

/// Builds the room for `def`, runs `ticks` ticks as fast as possible and summarises.
pub fn simulate(def: &WorldDef, ticks: u64, progress: bool) -> SimSummary {
    let mut room = Room::new();
    room.app_mut().add_plugins(VillagePlugin::new(def.clone()));
    room.world_mut().insert_resource(ScriptedPlayers);

    let bar = if progress {
        let bar = ProgressBar::new(ticks);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} ticks · {per_sec} · eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut driver = TickDriver::new(Pace::AsFastAsPossible);
    // Updating the bar every tick would cost more than a small world's tick.
    driver.run(&mut room, ticks, |_, n| {
        if n % 256 == 0 || n == ticks {
            bar.set_position(n);
        }
    });
    bar.finish_and_clear();

    let stats = driver.stats();
    let counts = sim::count_by_kind(room.world_mut());
    let ticks_per_sec = stats.ticks_per_sec();
    SimSummary {
        world: def.name.clone(),
        seed: def.seed,
        ticks,
        tick_hz: def.tick_hz,
        entities: counts.iter().map(|(_, n)| n).sum(),
        entities_by_kind: KindCounts {
            npcs: counts[Kind::Npc as usize].1,
            resources: counts[Kind::Resource as usize].1,
            buildings: counts[Kind::Building as usize].1,
            players: counts[Kind::Player as usize].1,
            swarm: counts[Kind::Swarmer as usize].1,
        },
        ticks_per_sec,
        realtime_factor: ticks_per_sec / f64::from(def.tick_hz),
        tick_p50_us: stats.quantile_us(0.50),
        tick_p99_us: stats.quantile_us(0.99),
        tick_max_us: stats.tick_ns.max() as f64 / 1_000.0,
        elapsed_sec: stats.elapsed.as_secs_f64(),
        state_hash: sim::format_hash(sim::state_hash(room.world_mut())),
    }
}

/// Entity counts per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Villagers.
    pub npcs: u64,
    /// Resource nodes.
    pub resources: u64,
    /// Buildings.
    pub buildings: u64,
    /// Player avatars.
    pub players: u64,
    /// Swarmers (the benchmark swarm).
    pub swarm: u64,
}

fn print_human(s: &SimSummary) {
    let k = &s.entities_by_kind;
    let mut kinds = format!(
        "npcs {} · resources {} · buildings {} · players {}",
        k.npcs, k.resources, k.buildings, k.players
    );
    if k.swarm > 0 {
        kinds += &format!(" · swarm {}", k.swarm);
    }
    println!(
        "kasagi sim · world {} · seed {} · {} ticks at {} Hz",
        s.world, s.seed, s.ticks, s.tick_hz
    );
    println!("  entities    {} ({kinds})", s.entities);
    println!(
        "  speed       {:.0} ticks/s ({:.0}× real time) in {:.2} s",
        s.ticks_per_sec, s.realtime_factor, s.elapsed_sec
    );
    println!(
        "  tick time   p50 {:.1} µs · p99 {:.1} µs · max {:.1} µs",
        s.tick_p50_us, s.tick_p99_us, s.tick_max_us
    );
    println!("  state_hash  {}", s.state_hash);
}
