//! One delta per baseline for room-view clients: built and encoded once per tick.
//!
//! A client that sees the whole room (`View::Room`), has no full state in
//! flight and builds against the tick `B` it acknowledged holds exactly the
//! server's state of tick `B` (that is what its acknowledgement means). Every
//! such client with the same `B` therefore needs the same change set for this
//! tick: the same creations, removals, moves (deltas against the same held
//! positions) and updates. Only the checksum differs, and only in *when* it is
//! due; its value is the same for all of them as long as no component is
//! owner-only (owners would see more). So the set is built for the first
//! client of each baseline, encoded once (and once more with the checksum, if
//! one of them is due one), and the bytes are copied to the others. On a
//! healthy link nearly every client acknowledged the previous tick, so an
//! interest-off room with many clients costs about one client plus a copy per
//! client; when acks lag, there are a few groups instead of one.

use super::View;
use super::build::{BuildContext, ChangeScratch, build, due_checksum};
use super::client_state::ClientState;
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
    /// The set without a checksum; `None` when there is nothing to send.
    set: Option<LimitedChangeSet>,
    plain: Vec<Vec<u8>>,
    with_checksum: Option<Vec<Vec<u8>>>,
}

/// The baseline `client` shares with other room-view clients this tick, if it
/// can take a shared delta.
pub(crate) fn shared_baseline(client: &ClientState, cx: &BuildContext) -> Option<u64> {
    if !matches!(client.view, View::Room) || client.view_dirty || client.full_in_flight.is_some() {
        return None;
    }
    let base = client.baseline(
        cx.tick,
        |b| cx.history.covers_since(b),
        cx.config.full_state_resend_ticks,
    )?;
    (client.acked == Some(base)).then_some(base)
}

impl SharedDelta {
    /// The packets for `client`, whose shared baseline is `base` (recording
    /// them as sent), or `None` when it has nothing to receive this tick.
    pub fn packets_for(
        &mut self,
        client: &mut ClientState,
        base: u64,
        cx: &BuildContext,
        scratch: &mut ChangeScratch,
    ) -> Option<Vec<Vec<u8>>> {
        let due = checksum_due(client, cx);
        let built = self.by_baseline.entry(base).or_insert_with(|| {
            // The first client of this baseline builds it; `build` records a
            // set it returns as sent, which is redone below for every client.
            let set = build(client, cx, scratch).map(|mut set| {
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
            }
        });
        let packets = if due {
            let sum = *self
                .checksum
                .get_or_insert_with(|| due_checksum(client, cx));
            built
                .with_checksum
                .get_or_insert_with(|| {
                    let mut set = built.set.clone().unwrap_or_else(|| LimitedChangeSet {
                        tick: cx.tick,
                        baseline: Some(base),
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
    client.checksum_due(cx.tick, cx.config.checksum_interval)
}
