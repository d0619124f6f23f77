//! Server behaviour: full change sets, idle ticks, interest, privacy, history window, identity.

mod common;

use bevy_app::App;
use bevy_ecs::prelude::*;
use common::*;
use glam::Vec2;
use kasagi_replication::client::ClientReplica;
use kasagi_replication::codec::decode_packet;
use kasagi_replication::fields::FieldValue;
use kasagi_replication::prelude::*;

fn spawn(app: &mut App, kind: KindId, at: Vec2) -> Entity {
    app.world_mut()
        .spawn((Replicated { kind }, Pos(at), Health(10)))
        .id()
}

fn server() -> (App, KindId) {
    server_app(ReplicationConfig::default())
}

fn deliver(server: &mut App, client: ClientId, app: &mut App) {
    let packets = server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .take_packets(client);
    for p in packets {
        ClientReplica::receive(app.world_mut(), &p).expect("valid packet");
    }
    if let Some(ack) = app.world_mut().resource_mut::<ClientReplica>().take_ack() {
        server
            .world_mut()
            .resource_mut::<ReplicationServer>()
            .receive_ack(client, ack)
            .unwrap();
    }
}

/// Client 1 with a room view, after its first tick delivered.
fn synced_room_client(server: &mut App) -> App {
    server
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .connect(ClientId(1), View::Room);
    let mut client = client_app(ReplicationConfig::default());
    server.update();
    deliver(server, ClientId(1), &mut client);
    client
}

fn change_set(app: &App) -> &FullChangeSet {
    app.world()
        .resource::<ReplicationServer>()
        .full_change_set()
}

#[test]
fn full_change_set_has_created_field_updates_and_deletions_by_kind() {
    let (mut app, units) = server();
    let trees = app.replicate_kind("trees");
    let a = spawn(&mut app, units, Vec2::new(1.0, 2.0));
    let t = spawn(&mut app, trees, Vec2::ZERO);
    app.update();
    let set = change_set(&app);
    assert_eq!(set.kinds["units"].created.len(), 1);
    assert_eq!(set.kinds["trees"].created.len(), 1);
    let names: Vec<&str> = set.kinds["units"].created[0]
        .components
        .iter()
        .map(|c| &*c.component)
        .collect();
    assert_eq!(names, ["pos", "health"]);

    app.world_mut().get_mut::<Pos>(a).unwrap().0.x = 1.5;
    app.world_mut().despawn(t);
    app.update();
    let set = change_set(&app);
    let id = *app.world().get::<NetId>(a).unwrap();
    let units_changes = &set.kinds["units"];
    assert_eq!(
        units_changes.updated.len(),
        1,
        "only the changed field: {:?}",
        units_changes.updated
    );
    let change = &units_changes.updated[0];
    assert_eq!((change.entity, &*change.field), (id, "pos.x"));
    assert_eq!(
        (&change.old, &change.new),
        (&FieldValue::F32(1.0), &FieldValue::F32(1.5))
    );
    assert_eq!(units_changes.written.len(), 1);
    assert_eq!(set.kinds["trees"].deleted.len(), 1);
    assert!(set.kinds["trees"].created.is_empty());

    // Each tick's set holds that tick's changes only (its lists are reused).
    app.world_mut().get_mut::<Health>(a).unwrap().0 = 9;
    app.update();
    let set = change_set(&app);
    assert_eq!(set.kinds.keys().collect::<Vec<_>>(), ["units"]);
    let units_changes = &set.kinds["units"];
    assert_eq!(
        units_changes.updated.len(),
        1,
        "{:?}",
        units_changes.updated
    );
    assert_eq!(&*units_changes.updated[0].field, "health");
    assert_eq!(units_changes.written.len(), 1);
    assert!(units_changes.created.is_empty() && units_changes.deleted.is_empty());
    app.update();
    assert!(change_set(&app).is_empty());
}

#[test]
fn without_the_full_change_set_clients_get_every_change_and_it_can_come_back() {
    let (mut app, units) = server_app(ReplicationConfig {
        full_change_set: false,
        ..ReplicationConfig::default()
    });
    let a = spawn(&mut app, units, Vec2::ONE);
    let doomed = spawn(&mut app, units, Vec2::ZERO);
    let mut client = synced_room_client(&mut app);
    assert!(change_set(&app).is_empty(), "no created snapshots either");

    app.world_mut().get_mut::<Health>(a).unwrap().0 = 4;
    app.world_mut().get_mut::<Pos>(a).unwrap().0.x = 3.0;
    app.world_mut().despawn(doomed);
    app.update();
    deliver(&mut app, ClientId(1), &mut client);
    assert!(change_set(&app).is_empty());
    assert_eq!(
        change_set(&app).tick,
        app.world().resource::<ReplicationServer>().tick()
    );
    let id = *app.world().get::<NetId>(a).unwrap();
    let replica = client.world().resource::<ClientReplica>();
    assert_eq!(replica.len(), 1, "the despawn reached the client");
    let seen = replica.entity(id).unwrap();
    assert_eq!(client.world().get::<Health>(seen).unwrap().0, 4);
    assert_eq!(client.world().get::<Pos>(seen).unwrap().0.x, 3.0);

    // Turned back on, the next tick's set holds that tick's changes.
    app.world_mut()
        .resource_mut::<ReplicationServer>()
        .set_full_change_set(true);
    app.world_mut().get_mut::<Health>(a).unwrap().0 = 3;
    app.update();
    let updated = &change_set(&app).kinds["units"].updated;
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(
        (&updated[0].old, &updated[0].new),
        (&FieldValue::Uint(4), &FieldValue::Uint(3))
    );
}

#[test]
fn a_component_added_back_records_its_fields_from_absent() {
    let (mut app, units) = server();
    let a = spawn(&mut app, units, Vec2::ONE);
    app.update();
    app.world_mut().entity_mut(a).remove::<Health>();
    app.update();
    let removed = &change_set(&app).kinds["units"];
    assert_eq!(removed.written.len(), 1);
    assert_eq!(removed.written[0].bytes, None, "a removal writes no value");
    assert!(removed.updated.is_empty(), "{:?}", removed.updated);

    app.world_mut().entity_mut(a).insert(Health(7));
    app.update();
    let added = &change_set(&app).kinds["units"];
    assert_eq!(added.updated.len(), 1, "{:?}", added.updated);
    let change = &added.updated[0];
    assert_eq!(&*change.field, "health");
    assert_eq!(change.old, FieldValue::Debug("<absent>".into()));
    assert_eq!(change.new, FieldValue::Uint(7));

    // And from then on it diffs against the value added.
    app.world_mut().get_mut::<Health>(a).unwrap().0 = 6;
    app.update();
    let change = &change_set(&app).kinds["units"].updated[0];
    assert_eq!(
        (&change.old, &change.new),
        (&FieldValue::Uint(7), &FieldValue::Uint(6))
    );
}

#[test]
fn writes_of_equal_values_are_not_changes() {
    let (mut app, units) = server();
    let a = spawn(&mut app, units, Vec2::ONE);
    app.update();
    *app.world_mut().get_mut::<Health>(a).unwrap() = Health(10);
    app.update();
    assert!(change_set(&app).is_empty());
}

#[test]
fn an_idle_tick_produces_empty_change_sets() {
    let (mut app, units) = server();
    for i in 0..50 {
        spawn(&mut app, units, Vec2::splat(i as f32));
    }
    let mut client = synced_room_client(&mut app);
    app.update();
    deliver(&mut app, ClientId(1), &mut client);
    app.update();
    assert!(change_set(&app).is_empty());
    let packets = app
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .take_packets(ClientId(1));
    assert!(
        packets.is_empty(),
        "an idle tick sends nothing: {packets:?}"
    );
    // Until a checksum is due: then the change set is a bare header with the
    // checksum. The client acks it, so nothing follows.
    let mut sent = Vec::new();
    for _ in 0..ReplicationConfig::default().checksum_interval {
        app.update();
        let packets = app
            .world_mut()
            .resource_mut::<ReplicationServer>()
            .take_packets(ClientId(1));
        for p in &packets {
            ClientReplica::receive(client.world_mut(), p).unwrap();
        }
        if let Some(ack) = client
            .world_mut()
            .resource_mut::<ClientReplica>()
            .take_ack()
        {
            let mut server = app.world_mut().resource_mut::<ReplicationServer>();
            server.receive_ack(ClientId(1), ack).unwrap();
        }
        sent.extend(packets);
    }
    assert_eq!(sent.len(), 1);
    let set = decode_packet(&sent[0]).unwrap().set;
    assert!(
        set.created.is_empty()
            && set.moved.is_empty()
            && set.updated.is_empty()
            && set.removed.is_empty()
    );
    assert!(set.checksum.is_some());
    assert!(sent[0].len() < 24, "{} bytes", sent[0].len());
    assert_eq!(replica(&client).stats().checksum_mismatches, 0);
    assert_eq!(replica(&client).stats().checksums_ok, 1);
}

#[test]
fn a_late_joiner_gets_a_full_state() {
    let (mut app, units) = server();
    for i in 0..30 {
        spawn(&mut app, units, Vec2::splat(i as f32));
    }
    for _ in 0..5 {
        app.update();
    }
    app.world_mut()
        .resource_mut::<ReplicationServer>()
        .connect(ClientId(9), View::Room);
    app.update();
    let packets = app
        .world_mut()
        .resource_mut::<ReplicationServer>()
        .take_packets(ClientId(9));
    let first = decode_packet(&packets[0]).unwrap();
    assert!(first.set.is_full());
    let mut client = client_app(ReplicationConfig::default());
    for p in &packets {
        ClientReplica::receive(client.world_mut(), p).unwrap();
    }
    assert_eq!(replica(&client).len(), 30);
    let mut q = client.world_mut().query::<(&NetId, &Health, &Pos)>();
    assert_eq!(q.iter(client.world()).count(), 30);
}

#[test]
fn private_components_reach_only_their_owner() {
    let (mut app, units) = server();
    let owned = app
        .world_mut()
        .spawn((
            Replicated { kind: units },
            Pos(Vec2::ZERO),
            Owner(ClientId(1)),
            Secret {
                code: 7,
                note: "x".into(),
            },
        ))
        .id();
    let mut clients = [
        (ClientId(1), client_app(ReplicationConfig::default())),
        (ClientId(2), client_app(ReplicationConfig::default())),
    ];
    for (id, _) in &clients {
        app.world_mut()
            .resource_mut::<ReplicationServer>()
            .connect(*id, View::Room);
    }
    app.update();
    for (id, c) in &mut clients {
        deliver(&mut app, *id, c);
    }
    app.world_mut().get_mut::<Secret>(owned).unwrap().code = 8;
    app.update();
    for (id, c) in &mut clients {
        deliver(&mut app, *id, c);
    }
    let secret = |c: &mut App| {
        let mut q = c.world_mut().query::<&Secret>();
        q.iter(c.world()).next().map(|s| s.code)
    };
    assert_eq!(secret(&mut clients[0].1), Some(8));
    assert_eq!(secret(&mut clients[1].1), None);
    assert_eq!(
        replica(&clients[1].1).len(),
        1,
        "the entity itself is public"
    );
}

#[test]
fn the_view_edge_has_hysteresis() {
    let config = ReplicationConfig {
        hysteresis: 8.0,
        ..ReplicationConfig::default()
    };
    let (mut app, units) = server_app(config.clone());
    let center = spawn(&mut app, units, Vec2::ZERO);
    let other = spawn(&mut app, units, Vec2::new(65.0, 0.0));
    app.update();
    let center_id = *app.world().get::<NetId>(center).unwrap();
    app.world_mut().resource_mut::<ReplicationServer>().connect(
        ClientId(1),
        View::Radius {
            center: Some(center_id),
            radius: 60.0,
        },
    );
    let mut client = client_app(config);
    let mut visible_at = |app: &mut App, x: f32| {
        app.world_mut().get_mut::<Pos>(other).unwrap().0.x = x;
        app.update();
        deliver(app, ClientId(1), &mut client);
        replica(&client).len() == 2
    };
    assert!(!visible_at(&mut app, 65.0), "outside the radius");
    assert!(visible_at(&mut app, 55.0), "inside the radius");
    assert!(
        visible_at(&mut app, 65.0),
        "within radius + hysteresis it stays"
    );
    assert!(visible_at(&mut app, 62.0));
    assert!(
        !visible_at(&mut app, 70.0),
        "beyond radius + hysteresis it leaves"
    );
    assert!(
        !visible_at(&mut app, 62.0),
        "and re-enters only inside the radius"
    );
    assert!(visible_at(&mut app, 59.0));
}

#[test]
fn a_client_behind_the_history_window_gets_a_full_state() {
    let config = ReplicationConfig {
        history_ticks: 8,
        ..ReplicationConfig::default()
    };
    let (mut app, units) = server_app(config.clone());
    let a = spawn(&mut app, units, Vec2::ZERO);
    app.world_mut()
        .resource_mut::<ReplicationServer>()
        .connect(ClientId(1), View::Room);
    let mut client = client_app(config);
    app.update();
    deliver(&mut app, ClientId(1), &mut client);
    // The client goes silent: no acks for longer than the window.
    for i in 0..12 {
        app.world_mut().get_mut::<Health>(a).unwrap().0 = i;
        app.update();
    }
    let server = app.world().resource::<ReplicationServer>();
    assert_eq!(server.client_stats(ClientId(1)).unwrap().full_states, 2);
}

#[test]
fn ids_are_assigned_or_kept() {
    let (mut app, units) = server();
    let mine = app
        .world_mut()
        .spawn((Replicated { kind: units }, NetId(1_000), Health(1)))
        .id();
    let auto = app
        .world_mut()
        .spawn((Replicated { kind: units }, Health(1)))
        .id();
    app.update();
    assert_eq!(app.world().get::<NetId>(mine), Some(&NetId(1_000)));
    let assigned = *app.world().get::<NetId>(auto).unwrap();
    assert_ne!(assigned, NetId(1_000));
    let later = app
        .world_mut()
        .spawn((Replicated { kind: units }, Health(1)))
        .id();
    app.update();
    assert!(
        app.world().get::<NetId>(later).unwrap().0 > 1_000,
        "fresh ids stay above every id seen"
    );
}

#[test]
fn entities_start_replicating_once_however_they_arrive() {
    // Spawned before the plugin: registered on the first tick all the same.
    let mut app = App::new();
    let early = app
        .world_mut()
        .spawn((Replicated { kind: KindId(0) }, Health(1)))
        .id();
    app.add_plugins(ReplicationPlugin::default());
    let units = common::register(&mut app);
    assert_eq!(units, KindId(0));
    app.update();
    let entities = |app: &App| app.world().resource::<ReplicationServer>().entity_count();
    assert_eq!(entities(&app), 1);

    // `Replicated` removed and inserted again within a tick: still one entity,
    // same id, and no new creation in the change set.
    let id = *app.world().get::<NetId>(early).unwrap();
    app.world_mut().entity_mut(early).remove::<Replicated>();
    app.world_mut()
        .entity_mut(early)
        .insert(Replicated { kind: units });
    // Spawned and despawned within a tick: never replicated.
    let fleeting = spawn(&mut app, units, Vec2::ZERO);
    app.world_mut().despawn(fleeting);
    app.update();
    assert_eq!(entities(&app), 1);
    assert_eq!(app.world().get::<NetId>(early), Some(&id));
    assert!(change_set(&app).kinds.is_empty(), "{:?}", change_set(&app));

    // Removed for a tick, then back: it replicates again, as a new creation.
    app.world_mut().entity_mut(early).remove::<Replicated>();
    app.update();
    assert_eq!(entities(&app), 0);
    app.world_mut()
        .entity_mut(early)
        .insert(Replicated { kind: units });
    app.update();
    assert_eq!(entities(&app), 1);
    assert_eq!(change_set(&app).kinds["units"].created.len(), 1);
}

#[test]
fn the_protocol_hash_tracks_the_registry() {
    let hash = |app: &App| {
        app.world()
            .resource::<ReplicationRegistry>()
            .protocol_hash()
    };
    let (a, _) = server();
    let b = client_app(ReplicationConfig::default());
    assert_eq!(
        hash(&a),
        hash(&b),
        "server and client with the same registrations agree"
    );
    let mut c = App::new();
    c.add_plugins(ReplicationPlugin::default());
    c.replicate::<Health>()
        .replicate_position::<Pos>(|p| p.0, Pos);
    assert_ne!(hash(&a), hash(&c), "a different registry disagrees");
}

#[test]
fn full_change_sets_serialize_for_storage_and_tools() {
    let (mut app, units) = server();
    let a = spawn(&mut app, units, Vec2::new(3.0, 4.0));
    app.update();
    app.world_mut().get_mut::<Pos>(a).unwrap().0.y = 5.0;
    app.update();
    let set = change_set(&app).clone();
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&set, config).unwrap();
    let (back, _): (FullChangeSet, usize) =
        bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(back, set);
    let json = serde_json::to_string(&set).unwrap();
    assert!(json.contains("\"field\":\"pos.y\""), "{json}");
    // Tools can turn stored component bytes back into named fields.
    app.update();
    let registry = app.world().resource::<ReplicationRegistry>();
    let pos = registry.index_of("pos").unwrap();
    let fields = registry
        .decode_fields(
            pos,
            &kasagi_replication::codec::encode_component(&Pos(Vec2::new(1.0, 2.0))),
        )
        .unwrap();
    assert_eq!(
        fields,
        vec![
            ("pos.x".to_string(), FieldValue::F32(1.0)),
            ("pos.y".to_string(), FieldValue::F32(2.0))
        ]
    );
}
