//! The village replicated end to end (in memory): clients hold exactly what the server lets them see.

mod common;

use bevy_app::App;
use common::{small_world, village_room};
use kasagi::replication::{VillageReplicationPlugin, register_village};
use kasagi::room::Room;
use kasagi::sim::{Npc, Player, Position, state_hash};
use kasagi_replication::client::{ClientReplica, ClientReplicationPlugin};
use kasagi_replication::{ClientId, NetId, ReplicationRegistry, ReplicationServer, View};

fn replicated_room(seed: u64) -> Room {
    let mut room = village_room(&small_world(seed));
    room.app_mut()
        .add_plugins(VillageReplicationPlugin::default());
    room
}

fn client() -> App {
    let mut app = App::new();
    app.add_plugins(ClientReplicationPlugin::default());
    register_village(&mut app);
    app
}

fn exchange(room: &mut Room, id: ClientId, client: &mut App) {
    let packets = room
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .take_packets(id);
    for p in packets {
        ClientReplica::receive(client.world_mut(), &p).expect("valid packet");
    }
    if let Some(ack) = client
        .world_mut()
        .resource_mut::<ClientReplica>()
        .take_ack()
    {
        room.world_mut()
            .resource_mut::<ReplicationServer>()
            .receive_ack(id, ack)
            .unwrap();
    }
}

#[test]
fn clients_mirror_the_village() {
    let mut room = replicated_room(5);
    // The first player's avatar is sim id 150 + 16 + 8 = the first id after NPCs, resources, buildings.
    let player_id = {
        let world = room.world_mut();
        let mut q = world.query::<(&Player, &kasagi::sim::SimId)>();
        q.iter(world)
            .find(|(p, _)| p.slot == 0)
            .map(|(_, id)| NetId(u64::from(id.0)))
            .unwrap()
    };
    let views = [
        (ClientId(1), View::Room),
        (
            ClientId(2),
            View::Radius {
                center: Some(player_id),
                radius: 60.0,
            },
        ),
    ];
    let mut clients: Vec<(ClientId, App)> = views.iter().map(|(id, _)| (*id, client())).collect();
    room.tick();
    for (id, view) in views {
        room.world_mut()
            .resource_mut::<ReplicationServer>()
            .connect(id, view);
    }
    for _ in 0..300 {
        room.tick();
        for (id, c) in &mut clients {
            exchange(&mut room, *id, c);
        }
    }
    let registry = room.world().resource::<ReplicationRegistry>();
    let server = room.world().resource::<ReplicationServer>();
    for (id, c) in &clients {
        let replica = c.world().resource::<ClientReplica>();
        assert_eq!(
            replica.state(),
            server.visible_state(*id, registry),
            "client {id:?}"
        );
        assert_eq!(replica.stats().checksum_mismatches, 0);
        assert!(replica.stats().checksums_ok > 0);
    }
    assert_eq!(
        clients[0].1.world().resource::<ClientReplica>().len(),
        150 + 16 + 8 + 4
    );
    let seen = clients[1].1.world().resource::<ClientReplica>().len();
    assert!(
        0 < seen && seen < 150,
        "the radius view sees part of the village: {seen}"
    );
    // The client world holds real village components.
    let world = clients[0].1.world_mut();
    assert_eq!(world.query::<&Npc>().iter(world).count(), 150);
    assert_eq!(
        world.query::<&Position>().iter(world).count(),
        150 + 16 + 8 + 4
    );
}

#[test]
fn the_full_change_set_speaks_in_fields_and_kinds() {
    let mut room = replicated_room(6);
    room.tick();
    let set = room
        .world()
        .resource::<ReplicationServer>()
        .full_change_set();
    assert_eq!(set.kinds["npcs"].created.len(), 150);
    assert_eq!(set.kinds["resources"].created.len(), 16);
    let mut fields = std::collections::BTreeSet::new();
    // Villagers get hungry after tens of seconds; watch a minute of game time.
    for _ in 0..1800 {
        room.tick();
        let set = room
            .world()
            .resource::<ReplicationServer>()
            .full_change_set();
        for changes in set.kinds.values() {
            fields.extend(changes.updated.iter().map(|c| c.field.clone()));
        }
    }
    for field in [
        "position.x",
        "position.y",
        "velocity.x",
        "npc.activity",
        "resource_node.amount",
    ] {
        assert!(fields.contains(field), "{field} missing from {fields:?}");
    }
}

#[test]
fn replication_does_not_change_the_simulation() {
    let def = small_world(9);
    let mut plain = village_room(&def);
    let mut replicated = replicated_room(9);
    for _ in 0..200 {
        plain.tick();
        replicated.tick();
    }
    assert_eq!(
        state_hash(plain.world_mut()),
        state_hash(replicated.world_mut())
    );
}
