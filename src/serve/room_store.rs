//! A room's side of persistence: building rooms the way the server runs them,
//! bringing them back from the store when they start, and answering history
//! requests from it without the room's tick waiting.

use bevy_ecs::schedule::IntoScheduleConfigs;
use kasagi_net::protocol::{ErrorCode, HistoryTick, MAX_HISTORY_TICKS, ServerMessage};
use kasagi_replication::codec::encode_component;
use kasagi_replication::{ReplicationConfig, ReplicationServer, ReplicationSystems};

use super::room_worker::{RoomSettings, ToNetwork};
use super::{FromRoom, outlet};
use crate::persist::{self, HistoryReply, PersistPlugin, Start};
use crate::replication::VillageReplicationPlugin;
use crate::room::{Room, RoomSchedule, TickSet};
use crate::sim::{SimState, VillagePlugin, WorldDef};

/// A room as the server runs it (village, replication, persistence), new or
/// resuming `from`. Tools that rebuild rooms from the store use it too, so a
/// replayed room runs exactly the systems the live one ran.
pub fn build(def: WorldDef, from: Option<SimState>) -> Room {
    let mut room = Room::new();
    let config = ReplicationConfig {
        // Full states travel on a reliable channel: no resends, and big parts.
        full_state_resend_ticks: None,
        full_state_mtu: 32 * 1024,
        mtu: 1_100,
        ..ReplicationConfig::default()
    };
    let village = match from {
        Some(state) => VillagePlugin::restored(def, state),
        None => VillagePlugin::new(def),
    };
    room.app_mut()
        .add_plugins((village, VillageReplicationPlugin { config }, PersistPlugin))
        .add_systems(
            RoomSchedule,
            outlet::hand_over
                .in_set(TickSet::Send)
                .after(ReplicationSystems::Send)
                .before(ReplicationSystems::Record),
        );
    room
}

/// The room at its last persisted tick, or a new one; `None` if the store
/// holds a state that cannot be read (serving a fresh world over it would
/// destroy it).
pub(super) fn open(settings: &RoomSettings, out: &ToNetwork) -> Option<Room> {
    let name = &settings.def.name;
    let Some(handle) = &settings.persist else {
        if settings.resume_only {
            return None;
        }
        let mut room = build(settings.def.clone(), None);
        // Only persistence reads a live room's full change sets: without a
        // store they would be field diffs made for no one.
        room.world_mut()
            .resource_mut::<ReplicationServer>()
            .set_full_change_set(false);
        return Some(room);
    };
    let loaded = match handle.load(name) {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(room = name, "cannot read the room's persisted state: {e}");
            return None;
        }
    };
    let Some(loaded) = loaded else {
        if settings.resume_only {
            return None;
        }
        let mut room = build(settings.def.clone(), None);
        persist::attach(
            &mut room,
            name,
            settings.def.clone(),
            handle.clone(),
            Start::NewLineage,
        );
        return Some(room);
    };
    match persist::recover(loaded, |def, state| build(def, Some(state))) {
        Ok((mut room, def, report)) => {
            if report.is_exact() {
                tracing::info!(
                    room = name,
                    tick = report.tick,
                    replayed = report.replayed_ticks,
                    "room recovered"
                );
            } else {
                tracing::warn!(room = name, ?report, "room recovered, but not exactly");
            }
            let start = if report.is_exact() {
                Start::Continue
            } else {
                Start::NewLineage
            };
            persist::attach(&mut room, name, def, handle.clone(), start);
            out.post(FromRoom::Recovered {
                room: name.clone(),
                report,
            });
            Some(room)
        }
        Err(e) => {
            tracing::error!(room = name, "cannot recover the room: {e}");
            None
        }
    }
}

/// Answers a history request from the store, off the room's worker.
pub(super) fn history(settings: &RoomSettings, out: &ToNetwork, client: u64, from: u64, to: u64) {
    let refuse = |message: &str| {
        out.send(
            client,
            ServerMessage::Error {
                code: ErrorCode::RoomUnavailable,
                message: message.to_string(),
            },
        );
    };
    let Some(handle) = &settings.persist else {
        return refuse("this server does not persist rooms");
    };
    let to = to.min(from.saturating_add(MAX_HISTORY_TICKS - 1));
    let reply_to = out.clone();
    let reply: HistoryReply = Box::new(move |result| {
        let message = match result {
            Ok(casts) => ServerMessage::History {
                from,
                to,
                ticks: casts
                    .into_iter()
                    .map(|(tick, from, cast)| HistoryTick {
                        tick,
                        from,
                        changes: encode_component(&cast),
                    })
                    .collect(),
            },
            Err(e) => ServerMessage::Error {
                code: ErrorCode::RoomUnavailable,
                message: format!("history unavailable: {e}"),
            },
        };
        reply_to.send(client, message);
    });
    if !handle.history(&settings.def.name, from, to, reply) {
        refuse("the store is busy; try again");
    }
}
