//! World definition files (RON): what a room's world looks like at tick 0.
//!
//! World files are untrusted input: every problem is reported as a
//! [`WorldFileError`] naming the file and, for syntax errors, the line and
//! column, and every count is bounded so that a typo cannot ask for a
//! billion entities.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{SwarmDef, Tuning};

/// The most entities of one kind a world may ask for.
pub const MAX_ENTITIES_PER_KIND: u32 = 1_000_000;
/// The largest map side, in world units.
pub const MAX_MAP_SIDE: f32 = 1_000_000.0;
/// The highest tick rate a world may ask for.
pub const MAX_TICK_HZ: u32 = 1_000;

/// A world definition: map, population, seed and tick rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldDef {
    /// The world's name; rooms and persisted state are keyed by it.
    pub name: String,
    /// Seed of the room's RNG: the same definition and seed give the same state.
    pub seed: u64,
    /// Simulation rate in ticks per second; simulation time advances `1 / tick_hz` per tick.
    pub tick_hz: u32,
    /// The map's extent.
    pub map: MapDef,
    /// How many entities of each kind the world starts with.
    pub population: Population,
    /// Gameplay constants; omitted fields take the defaults.
    #[serde(default)]
    pub tuning: Tuning,
    /// The synthetic benchmark swarm, if the world has one (see `sim::swarm`).
    #[serde(default)]
    pub swarm: Option<SwarmDef>,
    /// What each player sees; omitted means the server's configured view radius.
    #[serde(default)]
    pub interest: Option<Interest>,
}

/// What each client of a room is sent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Interest {
    /// Everything in the room (`--interest off`).
    Off,
    /// Entities within this radius of the player's own avatar (`--interest R`).
    Radius(f32),
}

impl std::str::FromStr for Interest {
    type Err = String;

    /// Parses `off` or a radius in world units, as `--interest` takes it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Interest::Off);
        }
        match s.parse::<f32>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Interest::Radius(r)),
            _ => Err(format!("{s:?} is neither `off` nor a positive radius")),
        }
    }
}

/// A rectangular map from `(0, 0)` to `(width, height)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapDef {
    /// Extent along x, in world units.
    pub width: f32,
    /// Extent along y, in world units.
    pub height: f32,
}

/// Entity counts per kind at tick 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// Villagers driven by their needs.
    pub npcs: u32,
    /// Food sources that deplete and regrow.
    pub resources: u32,
    /// Buildings that are built up and store food.
    pub buildings: u32,
    /// Player avatars, driven by inputs.
    pub players: u32,
}

impl Population {
    /// All entities together.
    pub fn total(&self) -> u64 {
        u64::from(self.npcs)
            + u64::from(self.resources)
            + u64::from(self.buildings)
            + u64::from(self.players)
    }
}

/// Why a world file could not be used.
#[derive(Debug, Error)]
pub enum WorldFileError {
    /// The file could not be read.
    #[error("cannot read world file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not valid RON for a world definition.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong there.
        message: String,
    },
    /// The file parsed, but a value is out of range.
    #[error("{path}: {field} {problem}")]
    Invalid {
        /// The file (or `<flags>` when an override is at fault).
        path: PathBuf,
        /// The offending field, as a path such as `population.npcs`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl WorldDef {
    /// Reads and validates a world file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, WorldFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| WorldFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates world RON; `path` is only used in error messages.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, WorldFileError> {
        let path = path.as_ref();
        let def: WorldDef = ron::from_str(text).map_err(|e| WorldFileError::Syntax {
            path: path.to_owned(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })?;
        def.validate(path)?;
        Ok(def)
    }

    /// Checks every value against its bounds.
    pub fn validate(&self, path: impl AsRef<Path>) -> Result<(), WorldFileError> {
        let invalid = |field: &'static str, problem: String| WorldFileError::Invalid {
            path: path.as_ref().to_owned(),
            field,
            problem,
        };
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(is_name_char) {
            return Err(invalid(
                "name",
                format!(
                    "{:?} must be 1–64 characters of a-z, A-Z, 0-9, '-' or '_'",
                    self.name
                ),
            ));
        }
        if !(1..=MAX_TICK_HZ).contains(&self.tick_hz) {
            return Err(invalid(
                "tick_hz",
                format!("= {} must be in 1..={MAX_TICK_HZ}", self.tick_hz),
            ));
        }
        for (field, side) in [
            ("map.width", self.map.width),
            ("map.height", self.map.height),
        ] {
            if !(side.is_finite() && (16.0..=MAX_MAP_SIDE).contains(&side)) {
                return Err(invalid(
                    field,
                    format!("= {side} must be in 16..={MAX_MAP_SIDE}"),
                ));
            }
        }
        let p = &self.population;
        for (field, n) in [
            ("population.npcs", p.npcs),
            ("population.resources", p.resources),
            ("population.buildings", p.buildings),
            ("population.players", p.players),
        ] {
            if n > MAX_ENTITIES_PER_KIND {
                return Err(invalid(
                    field,
                    format!("= {n} exceeds the limit of {MAX_ENTITIES_PER_KIND}"),
                ));
            }
        }
        if let Some(swarm) = &self.swarm {
            if swarm.entities > MAX_ENTITIES_PER_KIND {
                return Err(invalid(
                    "swarm.entities",
                    format!(
                        "= {} exceeds the limit of {MAX_ENTITIES_PER_KIND}",
                        swarm.entities
                    ),
                ));
            }
            if !(0.0..=1.0).contains(&swarm.moving) {
                return Err(invalid(
                    "swarm.moving",
                    format!("= {} must be a probability in 0..=1", swarm.moving),
                ));
            }
        }
        if let Some(Interest::Radius(r)) = self.interest
            && !(r.is_finite() && r > 0.0 && r <= MAX_MAP_SIDE)
        {
            return Err(invalid(
                "interest",
                format!("radius {r} must be in (0, {MAX_MAP_SIDE}]"),
            ));
        }
        self.tuning
            .validate()
            .map_err(|(field, problem)| invalid(field, problem))
    }
}

/// World names become parts of storage keys, so they are kept to a safe alphabet.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}
