//! Real UDP on 127.0.0.1: sessions, commands and prediction.

mod common;
mod net_support;

use std::time::Duration;

use kasagi::serve::ServeOptions;
use kasagi_net::client::{ClientAuth, NetClient, SyncState};
use kasagi_net::keys::Role;
use kasagi_net::server::ServerAuth;
use net_support::*;

#[test]
fn a_reconnect_within_grace_resumes_the_same_player_by_delta() {
    let server = start(ServerAuth::Insecure);
    let mut a = insecure(server.addr, 41);
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let full_state_bytes = a.net().bytes_received();
    let player = a.player().unwrap();
    let _ = pump(&mut [&mut a], Duration::from_millis(500), |_| false);

    // The connection drops (no goodbye); the client comes back on a new one.
    let net = NetClient::connect(ClientAuth::Insecure {
        client_id: 42,
        server: server.addr,
        role: Role::Player,
    })
    .unwrap();
    a.reconnect(net);
    let applied = a.replica().stats().applied;
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| {
        cs[0].state() == SyncState::Synced && cs[0].replica().stats().applied > applied
    }));
    assert_eq!(a.player(), Some(player), "the same avatar");
    assert_eq!(
        a.replica().stats().full_states,
        1,
        "resumed by delta, no second full state"
    );
    let resume_bytes = a.net().bytes_received();
    assert!(
        resume_bytes < full_state_bytes,
        "resume took {resume_bytes} bytes, the full state {full_state_bytes}"
    );
    assert_eq!(a.stats().reconnects, 1);
    // It keeps following the server.
    let before = a.replica().stats().applied;
    assert!(pump(&mut [&mut a], Duration::from_secs(5), |cs| {
        cs[0].send_input([0.3, 0.3], None);
        cs[0].replica().stats().applied > before + 10
    }));
}

#[test]
fn a_player_who_does_not_return_is_removed_after_the_grace_period() {
    let server = start_options(ServeOptions {
        reconnect_grace: Duration::from_secs(1),
        ..options(ServerAuth::Insecure, Vec::new())
    });
    let mut stays = insecure(server.addr, 91);
    let mut goes = insecure(server.addr, 92);
    assert!(pump(
        &mut [&mut stays, &mut goes],
        Duration::from_secs(10),
        |cs| { cs.iter().all(|c| c.state() == SyncState::Synced) }
    ));
    let gone = goes.player().unwrap();
    assert!(pump(&mut [&mut stays], Duration::from_secs(5), |cs| {
        seen_at(cs[0], gone).is_some()
    }));
    goes.leave();
    drop(goes);
    assert!(
        pump(&mut [&mut stays], Duration::from_secs(10), |cs| seen_at(
            cs[0], gone
        )
        .is_none()),
        "the avatar is despawned once its client is gone"
    );
}

#[test]
fn commands_take_effect_once_however_often_they_are_retried() {
    use kasagi_net::client::CommandResult;
    use kasagi_net::protocol::{Command, CommandArgs, CommandOutcome, encode};
    let server = start(ServerAuth::Insecure);
    let mut gm = insecure_as(server.addr, 71, Role::Gm);
    assert!(pump(&mut [&mut gm], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let before = npcs_seen(&mut gm);

    // The same command id sent twenty times: one villager appears.
    let command = Command {
        id: [42; 16],
        sequence: 1,
        kind: "spawn".into(),
        payload: encode(&CommandArgs::Spawn {
            kind: "npcs".into(),
            at: [100.0, 100.0],
        }),
        expected_version: None,
    };
    for _ in 0..20 {
        gm.send_raw(&kasagi_net::protocol::ClientMessage::Command(
            command.clone(),
        ));
    }
    assert!(pump(
        &mut [&mut gm],
        Duration::from_secs(5),
        |cs| npcs_seen(cs[0]) == before + 1
    ));
    let _ = pump(&mut [&mut gm], Duration::from_secs(1), |_| false);
    assert_eq!(npcs_seen(&mut gm), before + 1, "exactly once");

    // Through the client library, with its retries: acknowledged and applied once.
    let id = gm.send_command(
        "spawn",
        &CommandArgs::Spawn {
            kind: "npcs".into(),
            at: [50.0, 50.0],
        },
        None,
    );
    assert!(pump(&mut [&mut gm], Duration::from_secs(5), |cs| cs[0]
        .command_result(&id)
        .is_some()));
    assert_eq!(
        gm.command_result(&id),
        Some(&CommandResult::Done(CommandOutcome::Applied {
            version: None
        }))
    );
    assert!(pump(
        &mut [&mut gm],
        Duration::from_secs(5),
        |cs| npcs_seen(cs[0]) == before + 2
    ));

    // Versioned writes (entity 3 is a resource node: resources get the first ids):
    // a stale expected version is a conflict carrying the current value.
    let set = |v: f64| CommandArgs::SetField {
        entity: 3,
        field: "resource_node.amount".into(),
        value: v,
    };
    let first = gm.send_command("set_field", &set(1.0), Some(0));
    let stale = gm.send_command("set_field", &set(2.0), Some(0));
    assert!(pump(&mut [&mut gm], Duration::from_secs(5), |cs| {
        cs[0].command_result(&first).is_some() && cs[0].command_result(&stale).is_some()
    }));
    assert_eq!(
        gm.command_result(&first),
        Some(&CommandResult::Done(CommandOutcome::Applied {
            version: Some(1)
        }))
    );
    assert_eq!(
        gm.command_result(&stale),
        Some(&CommandResult::Conflict {
            version: 1,
            value: 1.0
        })
    );
}

#[test]
fn players_cannot_run_game_master_commands() {
    use kasagi_net::client::CommandResult;
    use kasagi_net::protocol::{CommandArgs, CommandOutcome};
    let server = start(ServerAuth::Insecure);
    let mut player = insecure_as(server.addr, 81, Role::Player);
    let mut other = insecure_as(server.addr, 82, Role::Player);
    assert!(pump(
        &mut [&mut player, &mut other],
        Duration::from_secs(10),
        |cs| { cs.iter().all(|c| c.state() == SyncState::Synced) }
    ));
    let victim = other.player().unwrap();
    let id = player.send_command(
        "teleport",
        &CommandArgs::Teleport {
            entity: victim.0,
            to: [1.0, 1.0],
        },
        None,
    );
    assert!(pump(
        &mut [&mut player, &mut other],
        Duration::from_secs(5),
        |cs| cs[0].command_result(&id).is_some()
    ));
    assert_eq!(
        player.command_result(&id),
        Some(&CommandResult::Done(CommandOutcome::Forbidden))
    );
    let at = seen_at(&mut other, victim).unwrap();
    assert!(
        at.distance(glam::Vec2::ONE) > 1.0,
        "the other avatar did not move"
    );
}

#[test]
fn the_own_player_is_predicted_and_reconciled() {
    fn step(p: [f32; 2], m: [f32; 2], dt: f32) -> [f32; 2] {
        // The village's rule: players move at `tuning.player_speed` (20 units/s).
        [p[0] + m[0] * 20.0 * dt, p[1] + m[1] * 20.0 * dt]
    }
    let server = start(ServerAuth::Insecure);
    let mut a = insecure(server.addr, 111);
    a.predict_with(step);
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let me = a.player().unwrap();
    assert!(pump(&mut [&mut a], Duration::from_secs(5), |cs| seen_at(
        cs[0], me
    )
    .is_some()));
    let start_at = seen_at(&mut a, me).unwrap();
    let dir = (glam::Vec2::splat(128.0) - start_at).normalize_or_zero();

    a.send_input(dir.to_array(), None);
    assert_eq!(a.unacked_inputs(), 1, "the input waits for the server");
    let mut leads = 0;
    assert!(pump(&mut [&mut a], Duration::from_secs(3), |cs| {
        cs[0].send_input(dir.to_array(), None);
        let auth = seen_at(cs[0], me).unwrap();
        let predicted = glam::Vec2::from_array(cs[0].predicted_position(auth.to_array()));
        let ahead = (predicted - auth).dot(dir);
        // The prediction runs ahead of the server, never behind, by about a round
        // trip of walking (bounded loosely here: debug build, shared cores).
        assert!((-0.01..20.0).contains(&ahead), "ahead by {ahead}");
        if ahead > 0.0 {
            leads += 1;
        }
        (auth - start_at).length() > 10.0
    }));
    assert!(leads > 0, "prediction ran ahead of the server");
    // Once the server has applied every input, prediction and server agree.
    assert!(pump(&mut [&mut a], Duration::from_secs(3), |cs| cs[0]
        .unacked_inputs()
        == 0));
    let auth = seen_at(&mut a, me).unwrap();
    assert_eq!(a.predicted_position(auth.to_array()), auth.to_array());
}

#[test]
fn a_dropped_client_reconnects_on_its_own_and_keeps_its_player() {
    let server = start(ServerAuth::Insecure);
    let mut a = insecure(server.addr, 121);
    let addr = server.addr;
    let mut next_id = 1_000;
    a.reconnect_with(Box::new(move || {
        next_id += 1;
        NetClient::connect(ClientAuth::Insecure {
            client_id: next_id,
            server: addr,
            role: Role::Player,
        })
    }));
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    let player = a.player().unwrap();
    // Misbehave until the server cuts the connection.
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| {
        if cs[0].stats().reconnects == 0 {
            for _ in 0..500 {
                cs[0].send_input([0.0, 0.0], None);
            }
        }
        cs[0].stats().reconnects > 0
    }));
    assert!(pump(&mut [&mut a], Duration::from_secs(10), |cs| cs[0]
        .state()
        == SyncState::Synced));
    assert_eq!(
        a.player(),
        Some(player),
        "the same avatar after the automatic reconnect"
    );
}

#[test]
fn a_held_input_is_repeated_with_each_ack_and_outlives_a_lost_send() {
    let (server, relay, relay_addr) = start_behind_relay(ServerAuth::Insecure);
    // `walker` sits behind the relay; `watcher` connects directly.
    let mut walker = insecure(relay_addr, 71);
    let mut watcher = insecure(server.addr, 72);
    assert!(pump(
        &mut [&mut walker, &mut watcher],
        Duration::from_secs(15),
        |cs| cs.iter().all(|c| c.state() == SyncState::Synced)
    ));
    let player = walker.player().unwrap();
    assert!(pump(
        &mut [&mut walker, &mut watcher],
        Duration::from_secs(5),
        |cs| seen_at(cs[1], player).is_some()
    ));
    let start_at = seen_at(&mut watcher, player).unwrap();

    // The send that `hold_input` makes at once is lost, and so are the
    // repeats of the next 300 ms: only a later repeat can move the avatar.
    let blackout = Impairment {
        drop: 1.0,
        duplicate: 0.0,
        max_delay_ms: 0,
    };
    relay.set(blackout);
    std::thread::sleep(Duration::from_millis(20));
    let inward = (glam::Vec2::splat(128.0) - start_at).normalize_or_zero();
    walker.hold_input(inward.to_array());
    watcher.hold_input([0.0, 0.0]);
    let _ = pump(
        &mut [&mut walker, &mut watcher],
        Duration::from_millis(300),
        |_| false,
    );
    relay.set(Impairment {
        drop: 0.0,
        ..blackout
    });

    let walked = pump(
        &mut [&mut walker, &mut watcher],
        Duration::from_secs(10),
        |cs| seen_at(cs[1], player).is_some_and(|p| (p - start_at).length() > 5.0),
    );
    assert!(walked, "the repeated input reached the server");

    // Each repeat leaves with an ack: about one datagram per change set
    // received, where a repeat of its own would make it two.
    let sent_before = watcher.udp();
    let applied_before = watcher.replica().stats().applied;
    let _ = pump(&mut [&mut watcher], Duration::from_millis(1_500), |_| false);
    let sent = (watcher.udp() - sent_before).datagrams_out;
    let applied = watcher.replica().stats().applied - applied_before;
    assert!(applied >= 20, "{applied} change sets");
    assert!(
        sent <= applied + applied / 5 + 3,
        "{sent} datagrams sent for {applied} change sets"
    );
}
