//! Server configuration: `kasagi.toml`, then environment (`KASAGI_*`), then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Everything `kasagi serve` can be configured with. Every field has a default.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// World file every room starts from.
    pub world: PathBuf,
    /// Data directory: the server key lives here.
    pub data_dir: PathBuf,
    /// Player view radius, world units.
    pub view_radius: f32,
    /// Seconds an empty room lives on.
    pub empty_room_grace_secs: u64,
    /// Seconds a disconnected player waits for its client to reconnect.
    pub reconnect_grace_secs: u64,
    /// Seconds between status lines.
    pub status_every_secs: u64,
    /// Most clients at once.
    pub max_clients: usize,
    /// Threads that tick the rooms; 0: one per core.
    pub room_threads: usize,
    /// Where rooms are persisted: `redis://host:port`, `file://DIR`, or `none`
    /// [default: `file://` + the data directory].
    pub store: Option<String>,
    /// Seconds a per-tick snapshot key lives.
    pub snapshot_ttl_secs: u64,
    /// Every how many ticks a room's whole state is archived.
    pub archive_interval: u64,
    /// About how many ops entries are kept per room (`MAXLEN ~`).
    pub ops_max_len: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 5000)),
            world: PathBuf::from("assets/worlds/village.ron"),
            data_dir: PathBuf::from("kasagi-data"),
            view_radius: 128.0,
            empty_room_grace_secs: 30,
            reconnect_grace_secs: 60,
            status_every_secs: 5,
            max_clients: 1024,
            room_threads: 0,
            store: None,
            snapshot_ttl_secs: 600,
            archive_interval: 100,
            ops_max_len: 1_000,
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// An environment variable holds an unusable value.
    #[error("environment variable {name}={value:?}: {problem}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        problem: String,
    },
}

impl ServerConfig {
    /// Reads `path` if given, else `./kasagi.toml` if it exists, else the defaults;
    /// then applies `KASAGI_BIND`, `KASAGI_WORLD`, `KASAGI_DATA_DIR`, `KASAGI_VIEW_RADIUS`,
    /// `REDIS_URL` and `KASAGI_STORE` (the latter wins).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let default_path = Path::new("kasagi.toml");
        let file = path.or_else(|| default_path.exists().then_some(default_path));
        let mut config = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    path: p.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => ServerConfig::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                problem: e.to_string(),
                value,
            })
        }
        if let Some(v) = get("KASAGI_BIND") {
            self.bind = parse("KASAGI_BIND", v)?;
        }
        if let Some(v) = get("KASAGI_WORLD") {
            self.world = PathBuf::from(v);
        }
        if let Some(v) = get("KASAGI_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("KASAGI_VIEW_RADIUS") {
            self.view_radius = parse("KASAGI_VIEW_RADIUS", v)?;
        }
        for name in ["REDIS_URL", "KASAGI_STORE"] {
            if let Some(v) = get(name).filter(|v| !v.is_empty()) {
                self.store = Some(v);
            }
        }
        Ok(())
    }

    /// The store URL in effect, `None` when persistence is off (`none`).
    pub fn store_url(&self) -> Option<String> {
        match self.store.as_deref() {
            Some("none") => None,
            Some(url) => Some(url.to_string()),
            None => Some(format!("file://{}", self.data_dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_override_defaults_and_environment_overrides_files() {
        let mut config: ServerConfig =
            toml::from_str("bind = \"127.0.0.1:6000\"\nview_radius = 50.0").unwrap();
        assert_eq!(config.bind.port(), 6000);
        assert_eq!(config.status_every_secs, 5);
        config
            .apply_env(|n| (n == "KASAGI_BIND").then(|| "127.0.0.1:7000".to_string()))
            .unwrap();
        assert_eq!(config.bind.port(), 7000);
        let err = config.apply_env(|n| (n == "KASAGI_VIEW_RADIUS").then(|| "wide".to_string()));
        assert!(err.unwrap_err().to_string().contains("KASAGI_VIEW_RADIUS"));
    }

    #[test]
    fn the_store_defaults_to_the_data_directory_and_follows_redis_url() {
        let mut config = ServerConfig::default();
        assert_eq!(config.store_url().as_deref(), Some("file://kasagi-data"));
        config
            .apply_env(|n| (n == "REDIS_URL").then(|| "redis://127.0.0.1:6379".to_string()))
            .unwrap();
        assert_eq!(
            config.store_url().as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        config.store = Some("none".into());
        assert_eq!(config.store_url(), None);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<ServerConfig>("bnid = \"x\"").is_err());
    }
}
