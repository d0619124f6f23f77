//! What was sent to a room while it closed.
//!
//! A room that has been empty for its grace period reads its inbox one last
//! time, archives itself and posts `Closed`. A client can join in between:
//! the network thread still has the room's inbox until it reads `Closed`,
//! and a join sent to it then would never be read, leaving the client
//! waiting for a room that is gone. So `Closed` carries the inbox, and the
//! network thread, its only sender, drains it once it has forgotten the room:
//! nothing can follow what it finds there.

use crossbeam_channel::Receiver;
use kasagi_net::protocol::{ErrorCode, ServerMessage};

use super::super::ToRoom;
use super::GameServer;

impl GameServer {
    /// Hands on what room `name` never read before it closed: if anyone
    /// asked to join, the room starts again (from the store, which holds
    /// its archived state, when it persists) and gets every unread message
    /// in order. A room that `failed` to start does not start again: its
    /// joiners hear why, and every client that asked for it may ask again. Without a join, the unread
    /// messages concern no member (the room was empty) and are dropped.
    pub(super) fn reroute_unread(&mut self, name: &str, unread: &Receiver<ToRoom>, failed: bool) {
        let unread: Vec<ToRoom> = unread.try_iter().collect();
        let joins = unread.iter().filter_map(|m| match m {
            ToRoom::Join { client, .. } => Some(*client),
            _ => None,
        });
        if failed {
            for client in joins.collect::<Vec<_>>() {
                self.queue(client, room_unavailable());
            }
            // Nobody is in a room that never started: all may ask again.
            for info in self.clients.values_mut() {
                if info.room.as_deref() == Some(name) {
                    info.room = None;
                }
            }
            return;
        }
        // A server shutting down starts no room.
        let shutting_down = unread.iter().any(|m| matches!(m, ToRoom::Shutdown));
        if joins.count() == 0 || shutting_down {
            return;
        }
        tracing::info!(
            room = name,
            "a client joined while the room closed: it starts again"
        );
        let inbox = self.room(name);
        for message in unread {
            let _ = inbox.send(message);
        }
    }
}

/// What a client that asked to join a room that cannot start hears.
fn room_unavailable() -> ServerMessage {
    ServerMessage::Error {
        code: ErrorCode::RoomUnavailable,
        message: "the room cannot start: its persisted state is unavailable".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crossbeam_channel::unbounded;
    use kasagi_net::keys::Role;
    use kasagi_net::server::ServerAuth;

    use super::*;
    use crate::serve::ServeOptions;
    use crate::sim::WorldDef;

    fn server() -> GameServer {
        let world = WorldDef::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/worlds/village.ron"
        ))
        .expect("the village world file");
        GameServer::bind(ServeOptions {
            bind: "127.0.0.1:0".parse().expect("an address"),
            world,
            auth: ServerAuth::Insecure,
            view_radius: 100.0,
            empty_room_grace: Duration::from_secs(5),
            reconnect_grace: Duration::from_secs(5),
            max_clients: 4,
            public_addresses: Vec::new(),
            rate_limits: Default::default(),
            persist: None,
            resume_rooms: Vec::new(),
            load_window: None,
            room_threads: 1,
        })
        .expect("a server on loopback")
    }

    fn join(client: u64) -> ToRoom {
        ToRoom::Join {
            client,
            session: None,
            role: Role::Player,
        }
    }

    #[test]
    fn a_join_sent_while_the_room_closed_starts_it_again() {
        let mut server = server();
        let (tx, unread) = unbounded();
        tx.send(join(7)).expect("open");
        tx.send(ToRoom::Leave {
            client: 7,
            lost: false,
        })
        .expect("open");
        server.reroute_unread("plaza", &unread, false);
        assert!(server.rooms.contains_key("plaza"), "the room starts again");
        assert!(unread.is_empty(), "everything unread was handed on");
    }

    #[test]
    fn without_a_join_or_when_shutting_down_the_room_stays_closed() {
        let mut server = server();
        let (tx, unread) = unbounded();
        tx.send(ToRoom::Leave {
            client: 7,
            lost: true,
        })
        .expect("open");
        server.reroute_unread("plaza", &unread, false);
        assert!(!server.rooms.contains_key("plaza"));

        tx.send(join(8)).expect("open");
        tx.send(ToRoom::Shutdown).expect("open");
        server.reroute_unread("plaza", &unread, false);
        assert!(
            !server.rooms.contains_key("plaza"),
            "no room starts at shutdown"
        );
    }

    #[test]
    fn joiners_of_a_room_that_could_not_start_may_ask_again() {
        let mut server = server();
        let (tx, unread) = unbounded();
        tx.send(join(9)).expect("open");
        server.reroute_unread("plaza", &unread, true);
        assert!(
            !server.rooms.contains_key("plaza"),
            "a failed room is not retried"
        );
        assert!(unread.is_empty());
    }
}
