//! `kasagi bots`: many real UDP clients in one process, walking and measuring.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy_app::App;
use clap::Args;
use glam::Vec2;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use kasagi_net::client::{ClientAuth, CommandResult, GameClient, NetClient, NetError, SyncState};
use kasagi_net::keys::{Role, load_or_create_key, mint_token};
use kasagi_net::protocol::CommandArgs;
use kasagi_replication::client::ClientReplicationPlugin;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::CliError;
use crate::replication::register_village;
use crate::sim::Velocity;

/// Arguments of `kasagi bots`.
#[derive(Debug, Args)]
pub struct BotsArgs {
    /// The server to connect to.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub server: SocketAddr,
    /// The room to join.
    #[arg(long, default_value = "village")]
    pub room: String,
    /// How many clients.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// How long to run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// The server's key file, to mint connect tokens.
    #[arg(long, value_name = "PATH", default_value = "kasagi-data/server.key")]
    pub key_file: PathBuf,
    /// Connect without tokens to an `--insecure` server.
    #[arg(long)]
    pub insecure: bool,
    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// What a bots run reports.
#[derive(Debug, Serialize)]
pub struct BotsSummary {
    /// Clients started.
    pub clients: u32,
    /// Clients that reached `Synced`.
    pub connected: u32,
    /// Clients out of sync at the end (checksum mismatches not healed).
    pub desyncs: u32,
    /// Resyncs requested during the run.
    pub resyncs: u64,
    /// Reconnections with a session token.
    pub reconnects: u64,
    /// Message bytes received per client per second.
    pub bytes_per_client_per_sec: f64,
    /// Input sent → own replicated velocity confirmed, median, ms.
    pub latency_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Samples behind the latency figures.
    pub latency_samples: u64,
    /// Commands sent (an `act` every few seconds per client).
    pub commands_sent: u64,
    /// Commands acknowledged by the server.
    pub commands_acked: u64,
}

struct Bot {
    client: GameClient,
    heading: Vec2,
    next_turn: Instant,
    /// A heading sent and not yet seen in the replica, with when.
    pending: Option<(Vec2, Instant)>,
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
    let mut rng = rand_pcg::Pcg32::seed_from_u64(u64::from(std::process::id()));
    let base_id: u64 = rng.random_range(1..u64::MAX / 4);
    let mut bots = Vec::new();
    for i in 0..u64::from(args.count) {
        let connect = connector(key, args.server, base_id + i * 1_000_000);
        let net = connect(0).map_err(|e| CliError::Failed(e.into()))?;
        let mut app = App::new();
        app.add_plugins(ClientReplicationPlugin::default());
        register_village(&mut app);
        let mut client = GameClient::new(net, app, args.room.clone());
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
            pending: None,
            next_command: Instant::now() + Duration::from_secs(2),
            commands: Vec::new(),
        });
    }

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
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let mut next_input = Instant::now();
    while Instant::now() < end {
        let now = Instant::now();
        let send_inputs = now >= next_input;
        if send_inputs {
            next_input = now + Duration::from_millis(33);
        }
        for bot in &mut bots {
            if bot.client.update().is_err() {
                continue;
            }
            if bot.client.state() != SyncState::Synced {
                continue;
            }
            if now >= bot.next_turn {
                bot.heading = Vec2::from_angle(rng.random_range(0.0..std::f32::consts::TAU));
                bot.next_turn = now + Duration::from_millis(rng.random_range(1000..3000));
                bot.pending = Some((bot.heading, now));
            }
            if send_inputs {
                bot.client.send_input(bot.heading.to_array(), None);
            }
            if now >= bot.next_command {
                let action = rng.random_range(1..=2u8);
                let id = bot
                    .client
                    .send_command("act", &CommandArgs::Act { action }, None);
                bot.commands.push(id);
                bot.next_command = now + Duration::from_millis(rng.random_range(3000..6000));
            }
            if let Some((heading, sent)) = bot.pending
                && own_velocity(&bot.client)
                    .is_some_and(|v| v.normalize_or_zero().dot(heading) > 0.99)
            {
                latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                bot.pending = None;
            }
        }
        let synced = bots
            .iter()
            .filter(|b| b.client.state() == SyncState::Synced)
            .count();
        bar.set_position(start.elapsed().as_secs());
        bar.set_message(format!("{synced}/{} synced", bots.len()));
        std::thread::sleep(Duration::from_millis(2));
    }
    bar.finish_and_clear();

    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = bots.iter().map(|b| b.client.net().bytes_received()).sum();
    let summary = BotsSummary {
        clients: args.count,
        connected: bots
            .iter()
            .filter(|b| b.client.replica().stats().full_states > 0)
            .count() as u32,
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
        bytes_per_client_per_sec: bytes as f64 / f64::from(args.count) / secs,
        latency_p50_ms: latency.value_at_quantile(0.5) as f64 / 1_000.0,
        latency_p99_ms: latency.value_at_quantile(0.99) as f64 / 1_000.0,
        latency_samples: latency.len(),
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
    };
    for bot in &mut bots {
        bot.client.leave();
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).map_err(anyhow::Error::from)?
        );
    } else {
        println!(
            "kasagi bots · {} clients · {} synced · {} desyncs · {} resyncs · {}/{} commands acked\n  {:.1} KB/s per client · latency p50 {:.1} ms · p99 {:.1} ms ({} samples)",
            summary.clients,
            summary.connected,
            summary.desyncs,
            summary.resyncs,
            summary.commands_acked,
            summary.commands_sent,
            summary.bytes_per_client_per_sec / 1_000.0,
            summary.latency_p50_ms,
            summary.latency_p99_ms,
            summary.latency_samples
        );
    }
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

/// The own player's replicated velocity.
fn own_velocity(client: &GameClient) -> Option<Vec2> {
    let entity = client.replica().entity(client.player()?)?;
    client.app().world().get::<Velocity>(entity).map(|v| v.0)
}
