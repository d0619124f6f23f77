//! One room on its own thread: a village world ticking in real time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use glam::Vec2;
use kasagi_net::protocol::{ClientMessage, ServerMessage, SessionToken};
use kasagi_replication::codec::is_full_state;
use kasagi_replication::{ClientId, NetId, ReplicationConfig, ReplicationServer, View};

use super::{FromRoom, ToRoom};
use crate::replication::VillageReplicationPlugin;
use crate::room::Room;
use crate::sim::{self, PlayerAction, PlayerInput, SimId, VillagePlugin, WorldDef};

/// A client's avatar in the room.
struct Member {
    player: SimId,
    slot: u32,
}

/// Settings of a room worker.
#[derive(Clone, Debug)]
pub(crate) struct RoomSettings {
    pub def: WorldDef,
    pub view_radius: f32,
    /// How long an empty room lives on.
    pub empty_grace: Duration,
}

/// Runs a room until it is shut down or has been empty for the grace period.
pub(crate) fn run(settings: RoomSettings, inbox: Receiver<ToRoom>, out: Sender<FromRoom>) {
    let name = settings.def.name.clone();
    let mut room = Room::new();
    let config = ReplicationConfig {
        // Full states travel on a reliable channel: no resends, and big parts.
        full_state_resend_ticks: None,
        full_state_mtu: 32 * 1024,
        mtu: 1_100,
        ..ReplicationConfig::default()
    };
    room.app_mut().add_plugins((
        VillagePlugin::new(settings.def.clone()),
        VillageReplicationPlugin { config },
    ));
    let slot = Duration::from_secs_f64(1.0 / f64::from(settings.def.tick_hz));
    let mut members: BTreeMap<u64, Member> = BTreeMap::new();
    let mut next_tick = Instant::now();
    let mut empty_since = Some(Instant::now());

    loop {
        // Handle everything that arrives until the next tick is due.
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(ToRoom::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(msg) => handle(&mut room, &mut members, &settings, &out, msg),
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        let took = room.tick();
        let _ = out.send(FromRoom::Tick {
            micros: took.as_micros() as u64,
        });
        send_packets(&mut room, &members, &out);

        next_tick += slot;
        // After a stall, do not try to catch up by running ticks back to back.
        if next_tick + slot < Instant::now() {
            next_tick = Instant::now() + slot;
        }
        if members.is_empty() {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= settings.empty_grace {
                let _ = out.send(FromRoom::Closed { room: name });
                return;
            }
        } else {
            empty_since = None;
        }
    }
}

fn handle(
    room: &mut Room,
    members: &mut BTreeMap<u64, Member>,
    settings: &RoomSettings,
    out: &Sender<FromRoom>,
    msg: ToRoom,
) {
    match msg {
        ToRoom::Join { client } => {
            if members.contains_key(&client) {
                return;
            }
            let (player, slot) = sim::spawn_player(room.world_mut());
            let net = NetId(u64::from(player.0));
            let tick = room.tick_count();
            room.world_mut()
                .resource_mut::<ReplicationServer>()
                .connect(
                    ClientId(client),
                    View::Radius {
                        center: Some(net),
                        radius: settings.view_radius,
                    },
                );
            let session = SessionToken(kasagi_net::keys::random_bytes());
            let _ = out.send(FromRoom::Send {
                client,
                message: ServerMessage::Joined {
                    room: settings.def.name.clone(),
                    player: net.0,
                    session,
                    tick,
                },
            });
            for other in members.keys() {
                let _ = out.send(FromRoom::Send {
                    client: *other,
                    message: ServerMessage::PlayerJoined { player: net.0 },
                });
            }
            members.insert(client, Member { player, slot });
        }
        ToRoom::Leave { client } => {
            if let Some(member) = members.remove(&client) {
                sim::despawn_player(room.world_mut(), member.player);
                room.world_mut()
                    .resource_mut::<ReplicationServer>()
                    .disconnect(ClientId(client));
                for other in members.keys() {
                    let _ = out.send(FromRoom::Send {
                        client: *other,
                        message: ServerMessage::PlayerLeft {
                            player: u64::from(member.player.0),
                        },
                    });
                }
            }
        }
        ToRoom::Message { client, message } => {
            let Some(member) = members.get(&client) else {
                return;
            };
            let world = room.world_mut();
            match message {
                ClientMessage::Input {
                    movement, action, ..
                } => {
                    // Server authority: the input moves only the sender's own avatar,
                    // at most at full speed (the simulation clamps the length to 1).
                    let movement = Vec2::from_array(movement);
                    let movement = if movement.is_finite() {
                        movement.clamp_length_max(1.0)
                    } else {
                        Vec2::ZERO
                    };
                    let action = match action {
                        Some(1) => Some(PlayerAction::Gather),
                        Some(2) => Some(PlayerAction::Build),
                        _ => None,
                    };
                    world.write_message(PlayerInput {
                        slot: member.slot,
                        movement,
                        action,
                    });
                }
                ClientMessage::Ack { tick } => {
                    if let Err(e) = world
                        .resource_mut::<ReplicationServer>()
                        .receive_ack(ClientId(client), tick)
                    {
                        tracing::debug!(client, "ack refused: {e}");
                    }
                }
                ClientMessage::SyncRequest => {
                    world
                        .resource_mut::<ReplicationServer>()
                        .request_full_state(ClientId(client));
                }
                ClientMessage::Join { .. } | ClientMessage::Leave => {}
            }
        }
        ToRoom::Shutdown => {}
    }
}

fn send_packets(room: &mut Room, members: &BTreeMap<u64, Member>, out: &Sender<FromRoom>) {
    let mut server = room.world_mut().resource_mut::<ReplicationServer>();
    for &client in members.keys() {
        for bytes in server.take_packets(ClientId(client)) {
            let message = if is_full_state(&bytes).unwrap_or(false) {
                ServerMessage::FullState(bytes)
            } else {
                ServerMessage::Changes(bytes)
            };
            let _ = out.send(FromRoom::Send { client, message });
        }
    }
}
