//! `kasagi replay`: rebuild a persisted room offline and inspect it.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::Serialize;

use super::CliError;
use crate::persist::records::{self, SnapshotRecord};
use crate::persist::{Loaded, Recovery, Retention, open_store, recover};
use crate::serve::build_room;
use crate::sim::{self, format_hash};

/// Arguments of `kasagi replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The store: `redis://127.0.0.1:6379` or `file://DIR` [env REDIS_URL;
    /// default: file://kasagi-data]. The embedded store can only be read while
    /// no server has it open.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The room (world name).
    #[arg(long, default_value = "village")]
    pub room: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `kasagi replay` found.
#[derive(Debug, Serialize)]
pub struct ReplaySummary {
    /// The room.
    pub room: String,
    /// How the room was rebuilt: whole state, replayed ticks, final tick and hash.
    pub recovery: Recovery,
    /// The state hash, formatted.
    pub state_hash: String,
    /// Entities per kind after the replay.
    pub entities: Vec<(String, u64)>,
    /// The newest unexpired per-tick snapshot: its tick and change counts.
    pub latest_snapshot: Option<(u64, usize)>,
}

pub(super) fn run(args: &ReplayArgs) -> Result<(), CliError> {
    let url = args
        .store
        .clone()
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "file://kasagi-data".into());
    let mut store = open_store(&url, Retention::default())
        .map_err(|e| CliError::Usage(format!("cannot open the store {url}: {e}")))?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let failed = |e: kasagi_store::StoreError| CliError::Failed(e.into());
    let Some(init) = store.init(&args.room, now_ms).map_err(failed)? else {
        return Err(CliError::Usage(format!(
            "{url} holds no room named {:?}",
            args.room
        )));
    };
    let ops = store
        .ops_after(&args.room, init.full_state.tick)
        .map_err(failed)?;
    let latest_snapshot = init.latest_snapshot.as_ref().and_then(|(tick, bytes)| {
        let record: SnapshotRecord = records::decode(bytes).ok()?;
        Some((*tick, record.full.len()))
    });
    let loaded = Loaded {
        latest_tick: init.latest_tick,
        full_state: init.full_state,
        ops,
    };
    let (mut room, _def, recovery) = recover(loaded, |def, state| build_room(def, Some(state)))
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot rebuild room {}: {e}", args.room)))?;
    let entities = sim::count_by_kind(room.world_mut())
        .iter()
        .map(|(kind, n)| (kind.plural().to_string(), *n))
        .collect();
    let summary = ReplaySummary {
        room: args.room.clone(),
        state_hash: format_hash(recovery.state_hash),
        recovery,
        entities,
        latest_snapshot,
    };
    if args.json {
        let line = serde_json::to_string(&summary).map_err(|e| CliError::Failed(e.into()))?;
        println!("{line}");
    } else {
        let r = &summary.recovery;
        println!(
            "room {}: tick {} (whole state of tick {}, {} ticks replayed, {} verified against the recording)",
            summary.room, r.tick, r.full_state_tick, r.replayed_ticks, r.verified_ticks
        );
        println!("state hash {}", summary.state_hash);
        for (kind, n) in &summary.entities {
            println!("  {kind}: {n}");
        }
        if let Some(why) = &r.stopped {
            println!("replay stopped early: {why}");
        }
        if let Some(t) = r.diverged_at {
            println!("replay diverged from the recording at tick {t}");
        }
    }
    Ok(())
}
