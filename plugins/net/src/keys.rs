//! Server keys and connect tokens.
//!
//! A server is secure by default: it holds a 32-byte private key (created on
//! first start, file mode 0600) and only accepts clients presenting a connect
//! token minted with that key. The token carries the client's [`Role`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use renet_netcode::{
    ConnectToken, NETCODE_KEY_BYTES, NETCODE_USER_DATA_BYTES, generate_random_bytes,
};
use thiserror::Error;

use crate::protocol::PROTOCOL_ID;

/// What a client may do, carried in its connect token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Moves its own player.
    Player,
    /// Game master: may also spawn, despawn, teleport and set fields.
    Gm,
}

impl Role {
    /// The token's user data for this role.
    pub fn to_user_data(self) -> [u8; NETCODE_USER_DATA_BYTES] {
        let mut data = [0; NETCODE_USER_DATA_BYTES];
        data[0] = match self {
            Role::Player => 1,
            Role::Gm => 2,
        };
        data
    }

    /// The role in a token's user data; unknown values are players.
    pub fn from_user_data(data: Option<&[u8; NETCODE_USER_DATA_BYTES]>) -> Role {
        match data.map(|d| d[0]) {
            Some(2) => Role::Gm,
            _ => Role::Player,
        }
    }
}

/// Why a key could not be loaded or a token minted.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The reason.
        source: std::io::Error,
    },
    /// The key file does not hold exactly 32 bytes.
    #[error("key file {path} holds {len} bytes, not {NETCODE_KEY_BYTES}")]
    BadLength {
        /// The key file.
        path: String,
        /// Its length.
        len: usize,
    },
    /// netcode refused to mint the token.
    #[error("cannot mint a connect token: {0}")]
    Token(String),
}

/// Cryptographically random bytes (session tokens, keys).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    generate_random_bytes()
}

/// Reads the server key at `path`, creating it (mode 0600) if it does not exist.
pub fn load_or_create_key(path: &Path) -> Result<[u8; NETCODE_KEY_BYTES], KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadLength {
                path: path.display().to_string(),
                len: bytes.len(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let key: [u8; NETCODE_KEY_BYTES] = generate_random_bytes();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            file.write_all(&key).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// Mints a connect token for `client_id` valid for `ttl` against the server at `server`.
pub fn mint_token(
    key: &[u8; NETCODE_KEY_BYTES],
    client_id: u64,
    server: SocketAddr,
    role: Role,
    ttl: Duration,
) -> Result<ConnectToken, KeyError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ConnectToken::generate(
        now,
        PROTOCOL_ID,
        ttl.as_secs().max(1),
        client_id,
        15,
        vec![server],
        Some(&role.to_user_data()),
        key,
    )
    .map_err(|e| KeyError::Token(e.to_string()))
}
