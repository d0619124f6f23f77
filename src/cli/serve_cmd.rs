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
use crate::config::ServerConfig;
use crate::serve::{GameServer, ServeOptions, ServerStatus};
use crate::sim::WorldDef;

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
    let world = WorldDef::load(&config.world).map_err(|e| CliError::Usage(e.to_string()))?;
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
    server.run(stop, every, print_status);
    eprintln!("kasagi stopped");
    Ok(())
}

fn print_status(s: &ServerStatus) {
    eprintln!(
        "rooms {} · clients {} · tick p99 {:.2} ms · out {:.1} KB/s",
        s.rooms,
        s.clients,
        s.tick_p99_us / 1_000.0,
        s.bytes_out_per_sec.max(0.0) / 1_000.0
    );
}
