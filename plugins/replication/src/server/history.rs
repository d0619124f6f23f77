//! The change history: which entities changed which components in each recent tick.

use std::collections::VecDeque;

use crate::net_id::NetId;

/// One tick's changes: entity ids with the mask of changed components, in
/// no particular order (every reader sums or merges them; sorting 2,000
/// ids a tick cost 3 % of a village tick before its packets left).
#[derive(Debug, Default)]
pub(crate) struct TickRecord {
    pub tick: u64,
    pub changed: Vec<(NetId, u64)>,
    /// Changes recorded before this tick's, since the server started.
    changes_before: u64,
}

/// A ring of the last `capacity` ticks' changes.
#[derive(Debug, Default)]
pub(crate) struct History {
    ticks: VecDeque<TickRecord>,
    /// Changes recorded since the server started.
    changes: u64,
}

impl History {
    /// Appends a tick, dropping ticks beyond `capacity`; recycles the dropped record's buffer.
    pub fn push(
        &mut self,
        tick: u64,
        changed: impl Iterator<Item = (NetId, u64)>,
        capacity: usize,
    ) {
        let mut record = if self.ticks.len() >= capacity.max(1) {
            self.ticks.pop_front().unwrap_or_default()
        } else {
            TickRecord::default()
        };
        record.tick = tick;
        record.changed.clear();
        record.changed.extend(changed);
        record.changes_before = self.changes;
        self.changes += record.changed.len() as u64;
        self.ticks.push_back(record);
    }

    /// Whether every tick after `baseline` up to the newest is still held.
    pub fn covers_since(&self, baseline: u64) -> bool {
        match self.ticks.front() {
            Some(front) => front.tick <= baseline + 1,
            None => true,
        }
    }

    /// How many changes the records of ticks after `baseline` hold, without
    /// walking them (an idle tick costs every client nothing).
    pub fn changes_since(&self, baseline: u64) -> usize {
        self.since(baseline)
            .next()
            .map_or(0, |first| (self.changes - first.changes_before) as usize)
    }

    /// The records of ticks after `baseline`, oldest first.
    pub fn since(&self, baseline: u64) -> impl Iterator<Item = &TickRecord> {
        // Ticks are consecutive, so the first wanted record is found by offset.
        let skip = self
            .ticks
            .front()
            .map_or(0, |f| (baseline + 1).saturating_sub(f.tick) as usize)
            .min(self.ticks.len());
        self.ticks.range(skip..)
    }
}
