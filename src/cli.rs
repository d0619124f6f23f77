//! The `kasagi` command line.
//!
//! Exit codes: 0 on success, 1 when the work itself failed, 2 when the
//! invocation was wrong (bad flags, unreadable or invalid world file).

mod bench_cmd;
mod bots_cmd;
mod replay_cmd;
mod serve_cmd;
mod sim_cmd;
mod token_cmd;
mod world_flags;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use bench_cmd::{BenchArgs, ScenarioName};
pub use bots_cmd::{BotsArgs, BotsSummary};
pub use replay_cmd::{ReplayArgs, ReplaySummary};
pub use serve_cmd::ServeArgs;
pub use sim_cmd::{KindCounts, SimArgs, SimSummary, simulate};
pub use token_cmd::TokenArgs;

/// Kasagi: headless ECS game-simulation server.
#[derive(Debug, Parser)]
#[command(name = "kasagi", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a world headless as fast as possible and summarise it.
    ///
    /// The run is deterministic: the same world file and seed always end in the
    /// same state_hash, whatever the machine's speed. Players are driven by
    /// scripted inputs drawn from the seed.
    ///
    /// Example: kasagi sim --world assets/worlds/village.ron --ticks 3000 --json
    Sim(SimArgs),
    /// Serve rooms to clients over UDP, in real time.
    ///
    /// Secure by default: a server key is created in the data directory on first
    /// start and clients need connect tokens minted with it (`kasagi token`, or
    /// `kasagi bots` does it for you). A status line every few seconds; Ctrl-C or
    /// SIGTERM stops gracefully.
    ///
    /// Example: kasagi serve --bind 127.0.0.1:5000 --world assets/worlds/village.ron
    Serve(ServeArgs),
    /// Mint a connect token (hex) with the server's key.
    Token(TokenArgs),
    /// Run N real UDP clients that join a room, walk about and measure.
    ///
    /// Example (second terminal next to `kasagi serve`): kasagi bots --count 50 --duration 20
    Bots(BotsArgs),
    /// Run a load scenario end to end (server and bots as separate processes)
    /// and print one JSON line: tick times, bytes per client, CPU, targets.
    ///
    /// Example: kasagi bench s1
    Bench(BenchArgs),
    /// Rebuild a persisted room offline from its store and report its state.
    ///
    /// Loads the room's last whole state, replays the recorded ticks after it
    /// (checking each against the change set the live room recorded) and prints
    /// the tick, the state hash and the entity counts: what a restarted server
    /// would resume with.
    ///
    /// Example: kasagi replay --store redis://127.0.0.1:6379 --room village --json
    Replay(ReplayArgs),
}

/// Why a command failed, and which exit code that deserves.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user asked for something impossible: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The work failed: exit code 1.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Parses the process arguments, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Sim(args) => sim_cmd::run(&args),
        Command::Serve(args) => serve_cmd::run(&args),
        Command::Token(args) => token_cmd::run(&args),
        Command::Bots(args) => bots_cmd::run(&args),
        Command::Bench(args) => bench_cmd::run(&args),
        Command::Replay(args) => replay_cmd::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `KASAGI_LOG` (e.g. `KASAGI_LOG=kasagi=debug`), warnings by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KASAGI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
