//! One delta for every room-view client in step: built and encoded once per tick.
//!
//! A client that sees the whole room (`View::Room`), has acknowledged the
//! previous tick and has no full state in flight holds exactly the server's
//! state of the previous tick (that is what its acknowledgement means). Every
//! such client therefore needs the same change set for this tick: the same
//! creations, removals, moves (deltas against the same held positions) and
//! updates. Only the checksum differs, and only in *when* it is due; its value
//! is the same for all of them as long as no component is owner-only (owners
//! would see more). So the set is built for the first such client, encoded
//! once (and once more with the checksum, if any client is due one), and the
//! bytes are copied to every other client in step. This is what keeps an
//! interest-off room with many clients at the cost of one client plus a copy
//! per client.

use super::View;
use super::build::{BuildContext, build, checksum};
use super::client_state::ClientState;
use crate::change_set::LimitedChangeSet;
use crate::codec::encode_packets;
use crate::net_id::NetId;
use bevy_platform::collections::HashMap;

/// This tick's shared delta, built on first use.
#[derive(Default)]
pub(crate) struct SharedDelta {
    built: Option<Built>,
}

struct Built {
    /// The set without a checksum; `None` when there is nothing to send.
    set: Option<LimitedChangeSet>,
    plain: Vec<Vec<u8>>,
    with_checksum: Option<Vec<Vec<u8>>>,
    checksum: Option<u64>,
}

/// Whether `client` can take the shared delta this tick.
pub(crate) fn in_step(client: &ClientState, cx: &BuildContext) -> bool {
    let tick = cx.tick;
    matches!(client.view, View::Room)
        && !client.view_dirty
        && tick > 0
        && client.acked == Some(tick - 1)
        && client.full_in_flight.is_none()
        && client.baseline(
            tick,
            |b| cx.history.covers_since(b),
            cx.config.full_state_resend_ticks,
        ) == Some(tick - 1)
}

impl SharedDelta {
    /// The packets for in-step `client` (recording them as sent), or `None`
    /// when it has nothing to receive this tick.
    pub fn packets_for(
        &mut self,
        client: &mut ClientState,
        cx: &BuildContext,
        scratch: &mut HashMap<NetId, u64>,
    ) -> Option<Vec<Vec<u8>>> {
        let due = checksum_due(client, cx);
        let built = self.built.get_or_insert_with(|| {
            // The first client in step builds it; its record of what was sent
            // is taken back so that every client gets the same one below.
            let set = build(client, cx, scratch).map(|mut set| {
                // `build` records a set it returns, and only then.
                client.sent.pop_back();
                set.checksum = None;
                set
            });
            let set = set.filter(|s| !s.is_empty_delta());
            Built {
                plain: set
                    .as_ref()
                    .map_or_else(Vec::new, |s| encode_packets(s, cx.config.mtu)),
                set,
                with_checksum: None,
                checksum: None,
            }
        });
        let packets = if due {
            let sum = *built
                .checksum
                .get_or_insert_with(|| checksum(client, cx.mirror));
            built
                .with_checksum
                .get_or_insert_with(|| {
                    let mut set = built.set.clone().unwrap_or_else(|| LimitedChangeSet {
                        tick: cx.tick,
                        baseline: Some(cx.tick - 1),
                        ..LimitedChangeSet::default()
                    });
                    set.checksum = Some(sum);
                    encode_packets(&set, cx.config.mtu)
                })
                .clone()
        } else if built.set.is_some() {
            built.plain.clone()
        } else {
            return None;
        };
        client.sent.push_back(cx.tick);
        Some(packets)
    }
}

fn checksum_due(client: &ClientState, cx: &BuildContext) -> bool {
    let interval = u64::from(cx.config.checksum_interval);
    interval > 0 && (cx.tick + u64::from(client.stagger)).is_multiple_of(interval)
}
