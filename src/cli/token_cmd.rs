//! `kasagi token`: mint a connect token with the server's key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kasagi_net::keys::{Role, load_or_create_key, mint_token};

use super::CliError;

/// A role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Moves its own player.
    Player,
    /// Game master.
    Gm,
}

/// Arguments of `kasagi token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The server's key file.
    #[arg(long, value_name = "PATH", default_value = "kasagi-data/server.key")]
    pub key_file: PathBuf,
    /// The server address the token is valid for.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub server: SocketAddr,
    /// The client id to grant.
    #[arg(long, value_name = "N")]
    pub client_id: u64,
    /// The role to grant.
    #[arg(long, value_enum, default_value = "player")]
    pub role: RoleArg,
    /// Validity in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400 * 30))]
    pub ttl: u64,
}

pub(super) fn run(args: &TokenArgs) -> Result<(), CliError> {
    if !args.key_file.exists() {
        return Err(CliError::Usage(format!(
            "no key file at {} (start `kasagi serve` once to create it)",
            args.key_file.display()
        )));
    }
    let key = load_or_create_key(&args.key_file).map_err(|e| CliError::Usage(e.to_string()))?;
    let role = match args.role {
        RoleArg::Player => Role::Player,
        RoleArg::Gm => Role::Gm,
    };
    let token = mint_token(
        &key,
        args.client_id,
        args.server,
        role,
        Duration::from_secs(args.ttl),
    )
    .map_err(|e| CliError::Failed(e.into()))?;
    let mut bytes = Vec::new();
    token
        .write(&mut bytes)
        .map_err(|e| CliError::Failed(e.into()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
    Ok(())
}
