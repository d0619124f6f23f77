//! `kasagi bots`: many real UDP clients in one process, walking and measuring.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bevy_app::App;
use clap::Args;
use glam::Vec2;
use indicatif::{ProgressBar, ProgressStyle};
use kasagi_net::client::{ClientAuth, CommandResult, GameClient, NetClient, NetError, SyncState};
use kasagi_net::keys::{Role, load_or_create_key, mint_token};
use kasagi_net::protocol::CommandArgs;
use kasagi_replication::client::ClientReplicationPlugin;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

mod latency;
mod window;

use latency::{Latency, Probe, Seen};
use window::{Window, WindowResult, WindowSpec};

use super::CliError;
use super::serve_cmd::seconds;
use crate::replication::register_village;

/// Arguments of `kasagi bots`.
#[derive(Debug, Args)]
pub struct BotsArgs {
    /// The server to connect to.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub server: SocketAddr,
    /// The room to join.
    #[arg(long, default_value = "village")]
    pub room: String,
    /// Spread the clients over this many rooms, named `ROOM-0` … `ROOM-(K-1)`.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rooms: u32,
    /// How many clients.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// How long to run, in seconds (with `--window`: the most to wait in all).
    #[arg(long, value_name = "SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// The server's key file, to mint connect tokens.
    #[arg(long, value_name = "PATH", default_value = "kasagi-data/server.key")]
    pub key_file: PathBuf,
    /// Connect without tokens to an `--insecure` server.
    #[arg(long)]
    pub insecure: bool,
    /// Send no inputs and no commands: only receive and acknowledge (swarm scenarios).
    #[arg(long)]
    pub idle: bool,
    /// Also measure input → confirmed on *another* client (costs a lookup per client per turn).
    #[arg(long)]
    pub remote_latency: bool,
    /// Measure a window of this many seconds once every client is synced (after `--warmup`),
    /// then stop.
    #[arg(long, value_name = "SECS")]
    pub window: Option<f64>,
    /// Warm-up before the window, s.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub warmup: f64,
    /// Halfway through the measured window, every client stops for this
    /// many seconds, reading, acknowledging and sending nothing, as when the
    /// clients' machine stalls: what the server does about clients that fell
    /// that far behind at once, and how they recover, is measured with the rest.
    #[arg(long, value_name = "SECS", requires = "window", value_parser = stall_secs)]
    pub stall: Option<f64>,
    /// At the end, check that every client holds exactly this many entities.
    #[arg(long, value_name = "N")]
    pub expect_entities: Option<usize>,
    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// `--stall`: a finite number of seconds, at most a minute.
pub(super) fn stall_secs(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=60.0).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!("{secs} is not between 0 and 60 seconds"))
    }
}

/// What a bots run reports.
#[derive(Debug, Serialize)]
pub struct BotsSummary {
    /// Clients started.
    pub clients: u32,
    /// Clients that received a full state.
    pub connected: u32,
    /// Clients out of sync at the end (checksum mismatches not healed).
    pub desyncs: u32,
    /// Resyncs requested during the run.
    pub resyncs: u64,
    /// Reconnections with a session token.
    pub reconnects: u64,
    /// Message bytes received per client per second, over the whole run.
    pub bytes_per_client_per_sec: f64,
    /// UDP payload bytes (netcode header included) received per client per
    /// second within the measured window (`--window`), else over the whole run.
    pub udp_bytes_per_client_per_sec: f64,
    /// Datagrams received per client per second, on the same terms.
    pub datagrams_per_client_per_sec: f64,
    /// UDP payload bytes sent per client per second, on the same terms
    /// (inputs, acks, loss reports, commands: the upstream).
    pub up_udp_bytes_per_client_per_sec: f64,
    /// Datagrams sent per client per second, on the same terms.
    pub up_datagrams_per_client_per_sec: f64,
    /// CPU time of this process within the window (user + system), s; over
    /// the whole run without a window.
    pub cpu_secs: f64,
    /// The measured window, s (0 without `--window`, or when it never started).
    pub window_secs: f64,
    /// Whether every client was synced when the window's warm-up began (it
    /// begins anyway after a minute).
    pub all_synced_at_start: bool,
    /// Checksums verified by all clients (each proves a replica equal to the server's view).
    pub checksums_ok: u64,
    /// Checksums that did not match.
    pub checksum_mismatches: u64,
    /// Full states received by all clients (one each on join; more mean a client fell
    /// behind the server's history window or asked to resync).
    pub full_states: u64,
    /// Change sets applied by all clients.
    pub change_sets_applied: u64,
    /// Change sets that could not be applied for want of their baseline, by
    /// all clients: lost or reordered links of a chain (each reported, and
    /// repaired by the server), or deltas that overtook a full state.
    pub missing_baselines: u64,
    /// Of those, the ones reported to the server (the client held a state):
    /// lost or reordered links, each costing a repair.
    pub missing_baseline_reports: u64,
    /// Fewest entities a client held at the end.
    pub entities_min: usize,
    /// Most entities a client held at the end.
    pub entities_max: usize,
    /// Clients holding exactly `--expect-entities` at the end (all clients when not given).
    pub entities_ok: u32,
    /// Input sent → own replicated velocity confirmed, median, ms.
    pub latency_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Samples behind the latency figures.
    pub latency_samples: u64,
    /// Input sent → confirmed on another client, median, ms (`--remote-latency`).
    pub remote_latency_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub remote_latency_p99_ms: f64,
    /// Samples behind the remote figures.
    pub remote_latency_samples: u64,
    /// Input sent → confirmed on another client, timed at the confirming
    /// datagram's arrival plus that client's processing rather than when
    /// this process got round to updating it, median, ms (`--remote-latency`).
    pub remote_latency_at_arrival_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub remote_latency_at_arrival_p99_ms: f64,
    /// Commands sent (an `act` every few seconds per client).
    pub commands_sent: u64,
    /// Commands acknowledged by the server.
    pub commands_acked: u64,
}

struct Bot {
    client: GameClient,
    heading: Vec2,
    next_turn: Instant,
    next_command: Instant,
    commands: Vec<[u8; 16]>,
}

pub(super) fn run(args: &BotsArgs) -> Result<(), CliError> {
    let key = if args.insecure {
        None
    } else {
        Some(
            load_or_create_key(&args.key_file)
                .map_err(|e| CliError::Usage(format!("{e} (or pass --insecure)")))?,
        )
    };
    let window = match args.window {
        Some(secs) => Some(Window::new(WindowSpec {
            warmup: seconds("--warmup", args.warmup)?,
            window: seconds("--window", secs)?,
        })),
        None => None,
    };
    let mut rng = rand_pcg::Pcg32::seed_from_u64(u64::from(std::process::id()));
    let base_id: u64 = rng.random_range(1..u64::MAX / 4);
    let mut bots = Vec::new();
    for i in 0..u64::from(args.count) {
        let connect = connector(key, args.server, base_id + i * 1_000_000);
        let net = connect(0).map_err(|e| CliError::Failed(e.into()))?;
        let mut app = App::new();
        app.add_plugins(ClientReplicationPlugin::default());
        register_village(&mut app);
        let room = if args.rooms > 1 {
            format!("{}-{}", args.room, i % u64::from(args.rooms))
        } else {
            args.room.clone()
        };
        let mut client = GameClient::new(net, app, room);
        // Reconnect on drops with a fresh client id, resuming the session.
        let mut attempt = 0;
        client.reconnect_with(Box::new(move || {
            attempt += 1;
            connect(attempt)
        }));
        bots.push(Bot {
            client,
            heading: Vec2::ZERO,
            next_turn: Instant::now(),
            next_command: Instant::now() + Duration::from_secs(2),
            commands: Vec::new(),
        });
    }
    let outcome = drive(args, &mut bots, window, &mut rng);
    for bot in &mut bots {
        bot.client.leave();
    }
    let summary = summarize(args, &bots, outcome);
    print_summary(&summary, args.json)
}

/// What the run loop measured.
struct Outcome {
    secs: f64,
    window: Option<WindowResult>,
    latency: Latency,
}

/// Runs the bots until `--duration` passes or the window closes.
fn drive(
    args: &BotsArgs,
    bots: &mut [Bot],
    mut window: Option<Window>,
    rng: &mut rand_pcg::Pcg32,
) -> Outcome {
    let bar = if !args.json && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(args.duration);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} s · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut latency = Latency::new(args.remote_latency);
    let mut probes: Vec<Option<Probe>> = vec![None; bots.len()];
    let mut seen =
        vec![Seen::new(Instant::now(), (Instant::now(), SystemTime::now()), None); bots.len()];
    if args.remote_latency {
        for bot in bots.iter_mut() {
            bot.client.net_mut().record_arrivals(true);
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let mut stall = args.stall.map(Duration::from_secs_f64);
    while Instant::now() < end && window.as_ref().is_none_or(|w| w.result().is_none()) {
        if let (Some(pause), Some(w)) = (stall, &window)
            && w.measured()
                .is_some_and(|t| t >= w.length().saturating_sub(pause) / 2)
        {
            // Every client at once: nothing read, acknowledged or sent.
            std::thread::sleep(pause);
            stall = None;
        }
        let now = Instant::now();
        let counted = window.as_ref().is_none_or(Window::measuring);
        let mut turned = Vec::new();
        for (i, bot) in bots.iter_mut().enumerate() {
            let started = Instant::now();
            let ok = bot.client.update().is_ok();
            let updated = (Instant::now(), SystemTime::now());
            seen[i] = Seen::new(started, updated, bot.client.net().last_arrival());
            if !ok || bot.client.state() != SyncState::Synced {
                continue;
            }
            if args.idle {
                continue;
            }
            if now >= bot.next_turn {
                bot.heading = Vec2::from_angle(rng.random_range(0.0..std::f32::consts::TAU));
                bot.next_turn = now + Duration::from_millis(rng.random_range(1000..3000));
                // Sent at once, so latency runs from the send; then repeated
                // with each tick's ack, as a player holding a direction is.
                bot.client.hold_input(bot.heading.to_array());
                turned.push((i, Instant::now()));
            }
            if now >= bot.next_command {
                let action = rng.random_range(1..=2u8);
                let id = bot
                    .client
                    .send_command("act", &CommandArgs::Act { action }, None);
                bot.commands.push(id);
                bot.next_command = now + Duration::from_millis(rng.random_range(3000..6000));
            }
        }
        let clients: Vec<&GameClient> = bots.iter().map(|b| &b.client).collect();
        for (i, sent) in turned {
            let heading = bots[i].heading;
            probes[i] = Some(Probe::new(
                heading,
                sent,
                counted,
                i,
                latency.measure_remote,
                &clients,
            ));
        }
        latency.resolve(&clients, &seen, &mut probes);
        let synced = clients
            .iter()
            .filter(|c| c.state() == SyncState::Synced)
            .count();
        if let Some(window) = &mut window {
            window.poll(synced == clients.len(), &clients);
        }
        bar.set_position(start.elapsed().as_secs());
        bar.set_message(format!("{synced}/{} synced", bots.len()));
        std::thread::sleep(Duration::from_millis(1));
    }
    bar.finish_and_clear();
    Outcome {
        secs: start.elapsed().as_secs_f64(),
        window: window.and_then(|w| w.result()),
        latency,
    }
}

fn summarize(args: &BotsArgs, bots: &[Bot], outcome: Outcome) -> BotsSummary {
    let n = f64::from(args.count);
    let bytes: u64 = bots.iter().map(|b| b.client.bytes_received()).sum();
    let (udp, secs, cpu_secs) = match outcome.window {
        Some(w) => (w.udp, w.secs, w.cpu_secs),
        None => {
            let clients: Vec<&GameClient> = bots.iter().map(|b| &b.client).collect();
            let cpu = crate::serve::process_cpu_secs();
            (window::udp_totals(&clients), outcome.secs, cpu)
        }
    };
    let per_client = |v: u64| v as f64 / n / secs;
    let held: Vec<usize> = bots.iter().map(|b| b.client.replica().len()).collect();
    let stats: Vec<_> = bots.iter().map(|b| b.client.replica().stats()).collect();
    let lat = &outcome.latency;
    let ms = |h: &hdrhistogram::Histogram<u64>, q| h.value_at_quantile(q) as f64 / 1_000.0;
    BotsSummary {
        clients: args.count,
        connected: stats.iter().filter(|s| s.full_states > 0).count() as u32,
        desyncs: bots
            .iter()
            .filter(|b| {
                matches!(
                    b.client.state(),
                    SyncState::OutOfSync | SyncState::Resyncing
                )
            })
            .count() as u32,
        resyncs: bots.iter().map(|b| b.client.stats().resyncs).sum(),
        reconnects: bots.iter().map(|b| b.client.stats().reconnects).sum(),
        bytes_per_client_per_sec: bytes as f64 / n / outcome.secs,
        udp_bytes_per_client_per_sec: per_client(udp.bytes_in),
        datagrams_per_client_per_sec: per_client(udp.datagrams_in),
        up_udp_bytes_per_client_per_sec: per_client(udp.bytes_out),
        up_datagrams_per_client_per_sec: per_client(udp.datagrams_out),
        cpu_secs,
        window_secs: outcome.window.map_or(0.0, |w| w.secs),
        all_synced_at_start: outcome.window.is_some_and(|w| w.all_synced_at_start),
        checksums_ok: stats.iter().map(|s| s.checksums_ok).sum(),
        checksum_mismatches: stats.iter().map(|s| s.checksum_mismatches).sum(),
        full_states: stats.iter().map(|s| s.full_states).sum(),
        change_sets_applied: stats.iter().map(|s| s.applied).sum(),
        missing_baselines: stats.iter().map(|s| s.missing_baseline).sum(),
        missing_baseline_reports: bots
            .iter()
            .map(|b| b.client.stats().missing_baseline_reports)
            .sum(),
        entities_min: held.iter().copied().min().unwrap_or(0),
        entities_max: held.iter().copied().max().unwrap_or(0),
        entities_ok: held
            .iter()
            .filter(|&&h| args.expect_entities.is_none_or(|e| e == h))
            .count() as u32,
        latency_p50_ms: ms(&lat.own, 0.5),
        latency_p99_ms: ms(&lat.own, 0.99),
        latency_samples: lat.own.len(),
        remote_latency_p50_ms: ms(&lat.remote, 0.5),
        remote_latency_p99_ms: ms(&lat.remote, 0.99),
        remote_latency_samples: lat.remote.len(),
        remote_latency_at_arrival_p50_ms: ms(&lat.remote_at_arrival, 0.5),
        remote_latency_at_arrival_p99_ms: ms(&lat.remote_at_arrival, 0.99),
        commands_sent: bots.iter().map(|b| b.commands.len() as u64).sum(),
        commands_acked: bots
            .iter()
            .map(|b| {
                b.commands
                    .iter()
                    .filter(|id| {
                        matches!(b.client.command_result(id), Some(CommandResult::Done(_)))
                    })
                    .count() as u64
            })
            .sum(),
    }
}

fn print_summary(summary: &BotsSummary, json: bool) -> Result<(), CliError> {
    if json {
        println!(
            "{}",
            serde_json::to_string(summary).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    println!(
        "kasagi bots · {} clients · {} synced · {} desyncs · {} resyncs · {}/{} commands acked\n  {:.1} KB/s per client on the socket ({:.1} KB/s of messages), {:.2} KB/s up · latency p50 {:.1} ms · p99 {:.1} ms ({} samples)",
        summary.clients,
        summary.connected,
        summary.desyncs,
        summary.resyncs,
        summary.commands_acked,
        summary.commands_sent,
        summary.udp_bytes_per_client_per_sec / 1_000.0,
        summary.bytes_per_client_per_sec / 1_000.0,
        summary.up_udp_bytes_per_client_per_sec / 1_000.0,
        summary.latency_p50_ms,
        summary.latency_p99_ms,
        summary.latency_samples
    );
    Ok(())
}

/// Opens connection number `attempt` of one bot: a token minted for a fresh
/// client id in secure mode, an insecure claim otherwise.
fn connector(
    key: Option<[u8; 32]>,
    server: SocketAddr,
    base_id: u64,
) -> impl Fn(u64) -> Result<NetClient, NetError> + Send + 'static {
    move |attempt| {
        let client_id = base_id + attempt;
        let auth = match &key {
            Some(key) => ClientAuth::Secure(Box::new(
                mint_token(
                    key,
                    client_id,
                    server,
                    Role::Player,
                    Duration::from_secs(3600),
                )
                .map_err(|e| NetError::Netcode(e.to_string()))?,
            )),
            None => ClientAuth::Insecure {
                client_id,
                server,
                role: Role::Player,
            },
        };
        NetClient::connect(auth)
    }
}
