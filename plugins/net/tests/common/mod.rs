//! A server and a client on 127.0.0.1, connected, for the transport's tests.

use std::time::{Duration, Instant};

use kasagi_net::client::{ClientAuth, NetClient};
use kasagi_net::keys::Role;
use kasagi_net::server::{NetEvent, NetServer, ServerAuth};

/// A server on an ephemeral port and one insecure client that completed the
/// handshake, with the client's id on the server.
pub fn connected() -> (NetServer, NetClient, u64) {
    let mut server =
        NetServer::bind("127.0.0.1:0".parse().unwrap(), &[], ServerAuth::Insecure, 8).unwrap();
    let mut client = NetClient::connect(ClientAuth::Insecure {
        client_id: 1,
        server: server.local_addr(),
        role: Role::Player,
    })
    .unwrap();
    let start = Instant::now();
    let mut id = None;
    while id.is_none() || !client.is_connected() {
        assert!(start.elapsed() < Duration::from_secs(10), "no handshake");
        for event in server.update() {
            if let NetEvent::Connected { client, .. } = event {
                id = Some(client);
            }
        }
        server.flush();
        client.update().unwrap();
        client.flush();
        std::thread::sleep(Duration::from_millis(1));
    }
    (server, client, id.unwrap())
}
