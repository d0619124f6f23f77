//! One delta per baseline for room-view clients: built and encoded once per tick.
//!
//! A client that sees the whole room (`View::Room`), has no full state in
//! flight and builds against a tick `B` whose positions it holds (its chain's
//! tip, or with chaining off the tick it acknowledged) applies the set on top
//! of exactly the server's state of tick `B`. Every such client with the same
//! `B` therefore needs the same change set for this tick: the same creations,
//! removals, moves (deltas against the same held positions) and updates. Only
//! the checksum differs, and only in *when* it is due; its value is the same
//! for all of them as long as no component is owner-only (owners would see
//! more). So the set is built for the first client of each baseline, encoded
//! once (and once more with the checksum, if one of them is due one), and the
//! bytes are copied to the others. Chained clients all build against the
//! previous tick, however late their acks, so an interest-off room with many
//! clients costs about one build plus a copy per client; a client being
//! repaired builds its own.

use super::View;
use super::build::{BuildContext, ChangeScratch, delta, due_checksum, sent_horizon};
use super::client_state::{Baseline, ClientState};
use crate::change_set::LimitedChangeSet;
use crate::codec::encode_packets;
use bevy_platform::collections::HashMap;

/// This tick's shared deltas by baseline, each built on first use.
#[derive(Default)]
pub(crate) struct SharedDelta {
    by_baseline: HashMap<u64, Built>,
    /// The checksum of the whole room at this tick, once computed.
    checksum: Option<u64>,
}

struct Built {
    /// The set without a checksum.
    set: LimitedChangeSet,
    /// Its packets, encoded on first use: an idle tick encodes nothing.
    plain: Option<Vec<Vec<u8>>>,
    with_checksum: Option<Vec<Vec<u8>>>,
}

/// The baseline `client` shares with other room-view clients this tick, if it
/// can take a shared delta: one whose positions it holds, so that the moves
/// are the same deltas for all.
pub(crate) fn shared_baseline(client: &ClientState, cx: &BuildContext) -> Option<Baseline> {
    if !matches!(client.view, View::Room) || client.view_dirty || client.full_in_flight.is_some() {
        return None;
    }
    client
        .baseline(cx.tick, |b| cx.history.covers_since(b), cx.config)
        .filter(|base| base.positions_held)
}

impl SharedDelta {
    /// The packets for `client`, whose shared baseline is `base` (recording
    /// them as sent), or `None` when it has nothing to receive this tick.
    pub fn packets_for(
        &mut self,
        client: &mut ClientState,
        base: Baseline,
        cx: &BuildContext,
        scratch: &mut ChangeScratch,
    ) -> Option<Vec<Vec<u8>>> {
        let due = client.checksum_due(cx.tick, cx.config.checksum_interval);
        let built = self.by_baseline.entry(base.tick).or_insert_with(|| {
            // The first client of this baseline builds it.
            Built {
                set: delta(client, cx, base, scratch),
                plain: None,
                with_checksum: None,
            }
        });
        let packets = if due {
            let sum = *self
                .checksum
                .get_or_insert_with(|| due_checksum(client, cx));
            built
                .with_checksum
                .get_or_insert_with(|| {
                    let mut set = built.set.clone();
                    set.checksum = Some(sum);
                    encode_packets(&set, cx.config.mtu)
                })
                .clone()
        } else if !built.set.is_empty_delta() || client.awaiting_ack(cx.config) {
            built
                .plain
                .get_or_insert_with(|| encode_packets(&built.set, cx.config.mtu))
                .clone()
        } else {
            return None;
        };
        client.mark_sent(cx.tick, Some(base), sent_horizon(cx));
        Some(packets)
    }
}
