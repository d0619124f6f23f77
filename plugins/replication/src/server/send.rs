//! The `Send` stage: each client's interest update, then its change set,
//! built and encoded.
//!
//! Every view's work reads the tick's shared state (mirror, history, the
//! tick's changes laid out by cell) and writes only that client's own state.
//! The room runs the views in turn: splitting them over two threads was
//! measured twice and lost on this project's 2-core machine (BENCHMARKS.md).

use bevy_ecs::prelude::*;

use super::build::{BuildContext, ChangeScratch, build, uses_room_sum};
use super::collect::rehash_changed;
use super::interest::{self, TickCells};
use super::shared::{SharedDelta, shared_baseline};
use super::{ReplicationServer, View};
use crate::codec::encode_packets;
use crate::config::ReplicationConfig;
use crate::registry::ReplicationRegistry;

/// Updates interest, then builds and encodes every client's change set.
pub(crate) fn send_change_sets(
    mut server: ResMut<ReplicationServer>,
    registry: Res<ReplicationRegistry>,
    config: Res<ReplicationConfig>,
    mut scratch: Local<ChangeScratch>,
) {
    let position_bit = registry.position_index().map_or(0, |p| p.bit());
    let server = &mut *server;
    let tick = server.tick;
    if server
        .clients
        .values()
        .any(|c| uses_room_sum(c, &registry) && c.checksum_due(tick, config.checksum_interval))
    {
        rehash_changed(server, &registry);
    }
    let changes = TickCells::new(&server.mirror, &server.scratch, position_bit);
    let cx = BuildContext {
        tick: server.tick,
        mirror: &server.mirror,
        history: &server.history,
        registry: &registry,
        config: &config,
    };
    let mut shared = SharedDelta::default();
    let shareable = !registry.has_private_components();
    for (id, client) in server.clients.iter_mut() {
        let held = client.held_back(cx.tick, cx.config, server.min_send_interval);
        // A room view's update is only this tick's spawns and despawns, and
        // its recompute would enter everything: it keeps updating.
        if held && matches!(client.view, View::Radius { .. }) {
            interest::defer(client, &server.scratch, cx.tick);
        } else {
            interest::update(
                client,
                cx.mirror,
                &server.scratch,
                &changes,
                cx.config,
                cx.tick,
            );
        }
        if held {
            client.stats.held_back += 1;
            server.send_totals.held_back += 1;
            if !client.held_back(cx.tick, cx.config, 1) {
                server.send_totals.shed += 1;
            }
            continue;
        }
        let packets = if let Some(base) = shareable.then(|| shared_baseline(client, &cx)).flatten()
        {
            shared.packets_for(client, base, &cx, &mut scratch)
        } else {
            build(client, &cx, &mut scratch).map(|set| {
                let mtu = if set.is_full() {
                    config.full_state_mtu
                } else {
                    config.mtu
                };
                encode_packets(&set, mtu)
            })
        };
        if let Some(packets) = packets {
            server.send_totals.change_sets += 1;
            client.stats.packets += packets.len() as u64;
            client.stats.bytes += packets.iter().map(|p| p.len() as u64).sum::<u64>();
            server.outbox.entry(*id).or_default().extend(packets);
        }
    }
}
