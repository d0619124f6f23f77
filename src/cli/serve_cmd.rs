//! `kasagi serve`: the real-time server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Args;
use kasagi_net::keys::load_or_create_key;
use kasagi_net::server::ServerAuth;

use super::CliError;
use super::world_flags::WorldFlags;
use crate::config::ServerConfig;
use crate::persist::{PersistConfig, PersistService, Retention, open_store};
use crate::serve::{GameServer, LoadWindowSpec, ServeOptions, ServerStatus};
use crate::sim::{WorldDef, format_hash};

/// Arguments of `kasagi serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address [default: 127.0.0.1:5000, or the config file's `bind`].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// World file rooms start from [default: assets/worlds/village.ron].
    #[arg(long, value_name = "PATH")]
    pub world: Option<PathBuf>,
    /// Configuration file [default: ./kasagi.toml when it exists].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory holding the server key [default: ./kasagi-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Accept clients without connect tokens, unencrypted. Local development only.
    #[arg(long)]
    pub insecure: bool,
    /// Where rooms are persisted: `redis://127.0.0.1:6379`, `file://DIR`, or
    /// `none` [default: `file://` + the data directory; env REDIS_URL].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Print status lines and recoveries as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Overrides of the world file.
    #[command(flatten)]
    pub overrides: WorldFlags,
    /// Threads that tick the rooms [default: one per core, or the config
    /// file's `room_threads`].
    #[arg(long, value_name = "N")]
    pub room_threads: Option<usize>,
    /// Measure one load window once this many clients are connected, and
    /// print it as a `load_window` event (used by `kasagi bench`).
    #[arg(long, value_name = "N")]
    pub measure_clients: Option<usize>,
    /// Warm-up before the measured window, s.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub warmup: f64,
    /// Length of the measured window, s.
    #[arg(long, value_name = "SECS", default_value_t = 17.0)]
    pub window: f64,
}

pub(super) fn run(args: &ServeArgs) -> Result<(), CliError> {
    let mut config =
        ServerConfig::load(args.config.as_deref()).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(world) = &args.world {
        config.world = world.clone();
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(threads) = args.room_threads {
        config.room_threads = threads;
    }
    let mut world = WorldDef::load(&config.world).map_err(|e| CliError::Usage(e.to_string()))?;
    args.overrides.apply(&mut world)?;
    let world_name = world.name.clone();
    let auth = if args.insecure {
        eprintln!("warning: --insecure: any client may connect, traffic is not encrypted");
        ServerAuth::Insecure
    } else {
        let key_file = config.data_dir.join("server.key");
        let key = load_or_create_key(&key_file).map_err(|e| CliError::Failed(e.into()))?;
        eprintln!(
            "secure mode: connect tokens must be minted with {}",
            key_file.display()
        );
        ServerAuth::Secure { key }
    };
    if let Some(store) = &args.store {
        config.store = Some(store.clone());
    }
    let persist = match config.store_url() {
        Some(url) => {
            let retention = Retention {
                snapshot_ttl_secs: config.snapshot_ttl_secs,
                ops_max_len: config.ops_max_len,
            };
            let store = open_store(&url, retention)
                .map_err(|e| CliError::Usage(format!("cannot open the store {url}: {e}")))?;
            eprintln!("persisting rooms to {url}");
            let persist = PersistConfig {
                archive_interval: config.archive_interval.max(1),
                ..PersistConfig::default()
            };
            Some(PersistService::start(store, persist))
        }
        None => {
            eprintln!("warning: --store none: rooms are not persisted");
            None
        }
    };
    let options = ServeOptions {
        bind: config.bind,
        world,
        auth,
        view_radius: config.view_radius,
        empty_room_grace: Duration::from_secs(config.empty_room_grace_secs),
        reconnect_grace: Duration::from_secs(config.reconnect_grace_secs),
        max_clients: config.max_clients,
        public_addresses: Vec::new(),
        rate_limits: Default::default(),
        persist: persist.as_ref().map(PersistService::handle),
        resume_rooms: vec![world_name],
        room_threads: config.room_threads,
        load_window: match args.measure_clients {
            Some(clients) => Some(LoadWindowSpec {
                clients,
                warmup: seconds("--warmup", args.warmup)?,
                window: seconds("--window", args.window)?,
            }),
            None => None,
        },
    };
    let server = GameServer::bind(options)
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", config.bind)))?;
    eprintln!("kasagi serving on {} (Ctrl-C to stop)", server.local_addr());

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::Failed(e.into()))?;
    }
    let every = Duration::from_secs(config.status_every_secs.max(1));
    let json = args.json;
    server.run(stop, every, |s| print_status(s, json));
    // Rooms have handed over their last whole states; wait for the writer.
    drop(persist);
    eprintln!("kasagi stopped");
    Ok(())
}

/// A duration flag: finite, non-negative, at most a day.
pub(super) fn seconds(flag: &str, secs: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= Duration::from_secs(86_400))
        .ok_or_else(|| CliError::Usage(format!("{flag} {secs}: expected 0..=86400 seconds")))
}

fn print_status(s: &ServerStatus, json: bool) {
    if let Some(report) = &s.load {
        // Always JSON: the line is read by `kasagi bench`.
        let mut line = serde_json::to_value(report).unwrap_or_default();
        line["event"] = "load_window".into();
        println!("{line}");
    }
    for (room, report) in &s.recovered {
        if json {
            let line = serde_json::json!({
                "event": "recovered",
                "room": room,
                "tick": report.tick,
                "latest_tick": report.latest_tick,
                "full_state_tick": report.full_state_tick,
                "replayed_ticks": report.replayed_ticks,
                "verified_ticks": report.verified_ticks,
                "exact": report.is_exact(),
                "stopped": report.stopped,
                "diverged_at": report.diverged_at,
                "state_hash": format_hash(report.state_hash),
            });
            println!("{line}");
        } else {
            eprintln!(
                "room {room} recovered at tick {} (whole state of tick {}, {} ticks replayed, {} verified), state hash {}{}",
                report.tick,
                report.full_state_tick,
                report.replayed_ticks,
                report.verified_ticks,
                format_hash(report.state_hash),
                if report.is_exact() {
                    ""
                } else {
                    " — NOT exact, see the log"
                }
            );
        }
    }
    if json {
        println!("{}", status_json(s));
        return;
    }
    eprintln!("{}", status_line(s));
}

/// The status as one JSON object (`--json`).
fn status_json(s: &ServerStatus) -> serde_json::Value {
    let (held_back, shed) = s.sends.shares();
    serde_json::json!({
        "event": "status",
        "rooms": s.rooms,
        "clients": s.clients,
        "tick_p99_ms": s.tick_p99_us / 1_000.0,
        "tick_late_p99_ms": s.late_p99_us / 1_000.0,
        "held_back_share": held_back,
        "shed_share": shed,
        "out_kb_per_sec": s.bytes_out_per_sec.max(0.0) / 1_000.0,
        "persist": s.persist,
    })
}

/// The status line an operator watches. The rooms' lateness and the share
/// of client ticks shed say whether the server is short of CPU before any
/// tick is skipped: shedding is how it copes (`serve::shedding`).
fn status_line(s: &ServerStatus) -> String {
    let persist = s.persist.map_or(String::new(), |p| {
        format!(
            " · persisted tick {} ({} writes, {} coalesced{})",
            p.last_tick,
            p.writes,
            p.coalesced_ticks,
            if p.store_down { ", STORE DOWN" } else { "" }
        )
    });
    let (_, shed) = s.sends.shares();
    format!(
        "rooms {} · clients {} · tick p99 {:.2} ms · late p99 {:.2} ms · shed {:.0} % · out {:.1} KB/s{persist}",
        s.rooms,
        s.clients,
        s.tick_p99_us / 1_000.0,
        s.late_p99_us / 1_000.0,
        shed * 100.0,
        s.bytes_out_per_sec.max(0.0) / 1_000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kasagi_replication::SendTotals;

    fn status() -> ServerStatus {
        ServerStatus {
            rooms: 20,
            clients: 1_000,
            rate_limited: 0,
            tick_p99_us: 2_100.0,
            late_p99_us: 12_500.0,
            sends: SendTotals {
                change_sets: 600,
                held_back: 400,
                shed: 250,
            },
            bytes_out_per_sec: 410_000.0,
            persist: None,
            recovered: Vec::new(),
            load: None,
        }
    }

    #[test]
    fn the_status_says_how_late_the_rooms_are_and_how_much_they_shed() {
        let line = status_line(&status());
        assert_eq!(
            line,
            "rooms 20 · clients 1000 · tick p99 2.10 ms · late p99 12.50 ms · shed 25 % · out 410.0 KB/s"
        );
        let json = status_json(&status());
        assert_eq!(json["tick_late_p99_ms"], 12.5);
        assert_eq!(json["held_back_share"], 0.4);
        assert_eq!(json["shed_share"], 0.25);
        // Nothing sent yet: no shares, no division by zero.
        let idle = ServerStatus {
            sends: SendTotals::default(),
            ..status()
        };
        assert_eq!(status_json(&idle)["shed_share"], 0.0);
        assert!(status_line(&idle).contains("shed 0 %"));
    }
}
