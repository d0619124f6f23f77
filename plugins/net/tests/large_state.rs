//! A 10 MB full state crosses real UDP on 127.0.0.1 in chunks, paced below renet's
//! per-channel memory limit (overflowing it would disconnect the client).

mod common;

use std::time::{Duration, Instant};

use common::connected;
use kasagi_net::channels::RELIABLE_IN_FLIGHT_BYTES;
use kasagi_net::protocol::ServerMessage;
use kasagi_net::server::NetEvent;

const CHUNK: usize = 32 * 1024;
const TOTAL: usize = 10 * 1024 * 1024;

fn chunk(i: usize) -> Vec<u8> {
    (0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

#[test]
fn ten_megabytes_arrive_whole_and_in_order() {
    let (mut server, mut client, id) = connected();

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
