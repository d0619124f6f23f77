//! Commands in a room: role checks, exactly-once application, versioned fields.

use std::collections::{HashMap, VecDeque};

use glam::Vec2;
use kasagi_net::keys::Role;
use kasagi_net::protocol::{Command, CommandArgs, CommandOutcome, ServerMessage, decode};

use crate::room::Room;
use crate::sim::input::{SimInput, apply_input};
use crate::sim::{PlayerAction, PlayerInput, SimId, admin};

/// How many answered command ids a room remembers for deduplication.
const REMEMBERED: usize = 16_384;

/// A room's command state.
#[derive(Default)]
pub(crate) struct Commands {
    /// Answers by command id, so a retried command gets the same answer and no second effect.
    answered: HashMap<[u8; 16], ServerMessage>,
    order: VecDeque<[u8; 16]>,
    /// Versions of fields written through `set_field`.
    versions: HashMap<(u64, String), u64>,
}

impl Commands {
    /// Runs `command` from a client with `role` whose avatar has `slot` (once per id)
    /// and returns the answer.
    pub fn handle(
        &mut self,
        room: &mut Room,
        role: Role,
        slot: u32,
        command: Command,
    ) -> ServerMessage {
        if let Some(answer) = self.answered.get(&command.id) {
            return answer.clone();
        }
        let answer = self.apply(room, role, slot, &command);
        if self.order.len() >= REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.answered.remove(&old);
        }
        self.order.push_back(command.id);
        self.answered.insert(command.id, answer.clone());
        answer
    }

    fn apply(
        &mut self,
        room: &mut Room,
        role: Role,
        slot: u32,
        command: &Command,
    ) -> ServerMessage {
        let ack = |outcome| ServerMessage::CommandAck {
            id: command.id,
            outcome,
        };
        let args: CommandArgs = match decode(&command.payload) {
            Ok(args) => args,
            Err(e) => return ack(CommandOutcome::Invalid(e.to_string())),
        };
        let world = room.world_mut();
        if let ("act", CommandArgs::Act { action }) = (command.kind.as_str(), &args) {
            let action = match action {
                1 => PlayerAction::Gather,
                2 => PlayerAction::Build,
                other => return ack(CommandOutcome::Invalid(format!("unknown action {other}"))),
            };
            // The action happens where the player stands, without changing its course.
            let movement = player_movement(world, slot);
            let input = SimInput::Player(PlayerInput {
                slot,
                movement,
                action: Some(action),
            });
            return match apply_input(world, input) {
                Ok(_) => ack(CommandOutcome::Applied { version: None }),
                Err(e) => ack(CommandOutcome::Invalid(e)),
            };
        }
        if role != Role::Gm {
            return ack(CommandOutcome::Forbidden);
        }
        let result = match (command.kind.as_str(), args) {
            ("spawn", CommandArgs::Spawn { kind, at }) if kind == "npcs" => {
                let at = Vec2::from_array(at);
                apply_input(world, SimInput::SpawnNpc { at }).map(|_| None)
            }
            ("spawn", CommandArgs::Spawn { kind, .. }) => {
                Err(format!("cannot spawn {kind:?}; only npcs"))
            }
            ("despawn", CommandArgs::Despawn { entity }) => sim_id(entity)
                .ok_or_else(|| "no such entity".to_string())
                .and_then(|id| apply_input(world, SimInput::Despawn(id)))
                .map(|_| None),
            ("teleport", CommandArgs::Teleport { entity, to }) => sim_id(entity)
                .ok_or_else(|| "no such entity".to_string())
                .and_then(|id| {
                    let to = Vec2::from_array(to);
                    apply_input(world, SimInput::Teleport { id, to })
                })
                .map(|_| None),
            (
                "set_field",
                CommandArgs::SetField {
                    entity,
                    field,
                    value,
                },
            ) => {
                let Some(id) = sim_id(entity) else {
                    return ack(CommandOutcome::Invalid("no such entity".into()));
                };
                let key = (entity, field.clone());
                let version = self.versions.get(&key).copied().unwrap_or(0);
                if let Some(expected) = command.expected_version
                    && expected != version
                {
                    return match admin::get_field(world, id, &field) {
                        Ok(current) => ServerMessage::Conflict {
                            id: command.id,
                            field,
                            version,
                            value: current,
                        },
                        Err(e) => ack(CommandOutcome::Invalid(e)),
                    };
                }
                // Without an expected version, concurrent writes are last-write-wins.
                apply_input(world, SimInput::SetField { id, field, value }).map(|_| {
                    self.versions.insert(key, version + 1);
                    Some(version + 1)
                })
            }
            (kind, _) => Err(format!(
                "unknown command {kind:?} or arguments that do not match it"
            )),
        };
        match result {
            Ok(version) => ack(CommandOutcome::Applied { version }),
            Err(e) => ack(CommandOutcome::Invalid(e)),
        }
    }
}

/// The player's current movement intent (its velocity over its speed).
fn player_movement(world: &mut bevy_ecs::world::World, slot: u32) -> Vec2 {
    let speed = world
        .resource::<crate::sim::SimParams>()
        .tuning
        .player_speed;
    let mut q = world.query::<(&crate::sim::Player, &crate::sim::Velocity)>();
    q.iter(world)
        .find(|(p, _)| p.slot == slot)
        .map_or(Vec2::ZERO, |(_, v)| v.0 / speed)
}

fn sim_id(entity: u64) -> Option<SimId> {
    u32::try_from(entity).ok().map(SimId)
}
