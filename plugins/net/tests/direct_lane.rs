//! The direct lane over real UDP on 127.0.0.1: the per-tick stream costs one
//! datagram per tick each way (renet used to add an ack datagram to each),
//! oversized stream messages still arrive through renet, and reliable
//! messages are still acknowledged although renet no longer flushes on a
//! timer.

mod common;

use std::time::{Duration, Instant};

use common::connected;
use kasagi_net::client::NetClient;
use kasagi_net::protocol::{ClientMessage, ServerMessage};
use kasagi_net::server::{NetEvent, NetServer};

/// One round: the server's pass and the client's update, then a short pause.
fn round(server: &mut NetServer, client: &mut NetClient) -> (Vec<NetEvent>, Vec<ServerMessage>) {
    let events = server.update();
    server.flush();
    let messages = client.update().expect("still connected");
    client.flush();
    (events, messages)
}

#[test]
fn a_tick_of_the_stream_is_one_datagram_each_way() {
    let (mut server, mut client, id) = connected();
    // Let the handshake's traffic settle.
    for _ in 0..20 {
        round(&mut server, &mut client);
        std::thread::sleep(Duration::from_millis(2));
    }
    let (server_before, client_before) = (server.udp(), client.udp());

    const TICKS: u64 = 60;
    let (mut sets, mut input_acks, mut acks) = (0, 0, 0);
    for tick in 0..TICKS {
        // A tick: a change set and an input ack, which share a datagram.
        server.send(id, &ServerMessage::Changes(vec![tick as u8; 300]));
        server.send(
            id,
            &ServerMessage::InputAck {
                sequence: tick as u32,
                tick,
            },
        );
        server.flush();
        std::thread::sleep(Duration::from_millis(3));
        for message in client.update().expect("still connected") {
            match message {
                ServerMessage::Changes(bytes) => {
                    assert_eq!(bytes, vec![tick as u8; 300], "tick {tick}'s set");
                    sets += 1;
                    client.send(&ClientMessage::Ack { tick });
                }
                ServerMessage::InputAck { tick: t, .. } => {
                    assert_eq!(t, tick);
                    input_acks += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        client.flush();
        std::thread::sleep(Duration::from_millis(3));
        for event in server.update() {
            if let NetEvent::Message {
                message: ClientMessage::Ack { tick: t },
                ..
            } = event
            {
                assert_eq!(t, tick);
                acks += 1;
            }
        }
    }
    assert_eq!(
        (sets, input_acks, acks),
        (TICKS, TICKS, TICKS),
        "loopback loses nothing"
    );

    let down = client.udp().datagrams_in - client_before.datagrams_in;
    let up = server.udp().datagrams_in - server_before.datagrams_in;
    // Slack for renet's once-a-second ack refresh and a netcode keep-alive or two;
    // renet's ack packets would have doubled both counts.
    assert!(
        (TICKS..=TICKS + 4).contains(&down),
        "{down} datagrams carried {TICKS} ticks to the client"
    );
    assert!(
        (TICKS..=TICKS + 4).contains(&up),
        "{up} datagrams carried {TICKS} acks to the server"
    );
}

#[test]
fn a_stream_message_too_large_for_a_datagram_goes_through_renet() {
    let (mut server, mut client, id) = connected();
    let big: Vec<u8> = (0..5_000).map(|i| (i % 251) as u8).collect();
    server.send(id, &ServerMessage::Changes(big.clone()));
    server.send(id, &ServerMessage::Changes(vec![1, 2, 3]));
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "got {} of 2",
            got.len()
        );
        let (_, messages) = round(&mut server, &mut client);
        got.extend(messages);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(got.contains(&ServerMessage::Changes(big)));
    assert!(got.contains(&ServerMessage::Changes(vec![1, 2, 3])));
}

#[test]
fn reliable_messages_are_acknowledged_and_stop_costing_datagrams() {
    let (mut server, mut client, id) = connected();
    const COUNT: usize = 40;
    for i in 0..COUNT {
        server.send(id, &ServerMessage::FullState(vec![i as u8; 2_000]));
    }
    let start = Instant::now();
    let mut received = 0;
    while received < COUNT || server.reliable_in_flight(id) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{received} of {COUNT} arrived, {} bytes unacknowledged",
            server.reliable_in_flight(id)
        );
        let (_, messages) = round(&mut server, &mut client);
        for message in messages {
            assert_eq!(
                message,
                ServerMessage::FullState(vec![received as u8; 2_000])
            );
            received += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    // Everything acknowledged: the connection falls quiet but for renet's
    // once-a-second ack refresh and netcode's keep-alives (10 a second).
    let (server_before, client_before) = (server.udp(), client.udp());
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(500) {
        round(&mut server, &mut client);
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent = server.udp().datagrams_out - server_before.datagrams_out;
    let received = client.udp().datagrams_out - client_before.datagrams_out;
    assert!(sent <= 8, "server sent {sent} datagrams in 0.5 s of quiet");
    assert!(
        received <= 8,
        "client sent {received} datagrams in 0.5 s of quiet"
    );
}
