//! A 10 MB full state crosses real UDP on 127.0.0.1 in chunks, paced below renet's
//! per-channel memory limit (overflowing it would disconnect the client).

use std::time::{Duration, Instant};

use kasagi_net::channels::RELIABLE_IN_FLIGHT_BYTES;
use kasagi_net::client::{ClientAuth, NetClient};
use kasagi_net::keys::Role;
use kasagi_net::protocol::ServerMessage;
use kasagi_net::server::{NetEvent, NetServer, ServerAuth};

const CHUNK: usize = 32 * 1024;
const TOTAL: usize = 10 * 1024 * 1024;

fn chunk(i: usize) -> Vec<u8> {
    (0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

#[test]
fn ten_megabytes_arrive_whole_and_in_order() {
    let mut server =
        NetServer::bind("127.0.0.1:0".parse().unwrap(), &[], ServerAuth::Insecure, 8).unwrap();
    let mut client = NetClient::connect(ClientAuth::Insecure {
        client_id: 1,
        server: server.local_addr(),
        role: Role::Player,
    })
    .unwrap();

    let start = Instant::now();
    let mut client_id = None;
    while client_id.is_none() || !client.is_connected() {
        assert!(start.elapsed() < Duration::from_secs(10), "no handshake");
        for event in server.update() {
            if let NetEvent::Connected { client, .. } = event {
                client_id = Some(client);
            }
        }
        server.flush();
        client.update().unwrap();
        client.flush();
        std::thread::sleep(Duration::from_millis(1));
    }
    let id = client_id.unwrap();

    let chunks = TOTAL / CHUNK;
    for i in 0..chunks {
        server.send(id, &ServerMessage::FullState(chunk(i)));
    }
    // The state is bigger than the window in flight: the rest waits in the backlog.
    const { assert!(TOTAL > RELIABLE_IN_FLIGHT_BYTES) };
    assert!(server.backlog_bytes(id) > 0, "pacing engaged");

    let mut received = Vec::new();
    let start = Instant::now();
    while received.len() < chunks {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of {chunks} chunks arrived",
            received.len()
        );
        let events = server.update();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, NetEvent::Disconnected { .. })),
            "client dropped"
        );
        server.flush();
        for message in client.update().expect("still connected") {
            if let ServerMessage::FullState(bytes) = message {
                received.push(bytes);
            }
        }
        client.flush();
        std::thread::sleep(Duration::from_micros(200));
    }
    for (i, bytes) in received.iter().enumerate() {
        assert!(*bytes == chunk(i), "chunk {i} arrived intact and in order");
    }
    assert_eq!(server.backlog_bytes(id), 0);
    assert!(client.bytes_received() as usize >= TOTAL);
}
