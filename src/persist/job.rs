//! The unit of work between a room and the writer: some consecutive ticks of
//! one room, which can be folded together without losing anything.

use kasagi_replication::FullChangeSet;

use std::sync::Arc;

use crate::sim::input::SimInput;
use crate::sim::{SimState, WorldDef};

/// A whole state to archive, with the rules of its world.
#[derive(Debug)]
pub(crate) struct Archive {
    /// The state.
    pub state: SimState,
    /// The world definition the room runs (archived so the state is self-contained).
    pub def: Arc<WorldDef>,
}

/// Ticks `from..=tick` of one room (none when `from > tick`: a state-only job).
#[derive(Debug)]
pub(crate) struct TickJob {
    /// The room's world name.
    pub world: String,
    /// The first tick covered.
    pub from: u64,
    /// The last tick covered.
    pub tick: u64,
    /// The inputs of each covered tick that had any.
    pub inputs: Vec<(u64, Vec<SimInput>)>,
    /// The covered ticks' replicated changes, one per tick or already
    /// composed, oldest first. Folding jobs only appends (the tick thread
    /// never copies or composes a change set: each is shared with the
    /// replication server that made it); the writer composes them with
    /// [`TickJob::compact`] right before encoding.
    pub changes: Vec<Arc<FullChangeSet>>,
    /// A captured whole state to archive (its own tick is `state.tick`).
    pub state: Option<Archive>,
    /// The state starts a new lineage: stored ops are dropped first.
    pub reset: bool,
    /// The covered ticks were dropped (memory bound): only a state may be written.
    pub gap: bool,
}

impl TickJob {
    /// A job for one tick.
    pub fn tick(
        world: &str,
        tick: u64,
        inputs: Vec<SimInput>,
        changes: Arc<FullChangeSet>,
        state: Option<Archive>,
    ) -> Self {
        Self {
            world: world.to_string(),
            from: tick,
            tick,
            inputs: if inputs.is_empty() {
                Vec::new()
            } else {
                vec![(tick, inputs)]
            },
            changes: vec![changes],
            state,
            reset: false,
            gap: false,
        }
    }

    /// A job that only archives `state` (a room's starting point).
    pub fn state_only(world: &str, state: Archive, reset: bool) -> Self {
        let tick = state.state.tick;
        Self {
            world: world.to_string(),
            from: tick + 1,
            tick,
            inputs: Vec::new(),
            changes: Vec::new(),
            state: Some(state),
            reset,
            gap: false,
        }
    }

    /// How many ticks the job covers.
    pub fn ticks(&self) -> u64 {
        (self.tick + 1).saturating_sub(self.from)
    }

    /// Whether the job covers any tick's changes.
    pub fn has_ops(&self) -> bool {
        self.from <= self.tick && !self.gap
    }

    /// Folds the following job of the same room into this one: writing the
    /// result has the same effect as writing both in order.
    pub fn absorb(&mut self, next: TickJob) {
        debug_assert_eq!(self.world, next.world);
        if self.gap {
            if let Some(state) = next.state {
                // A fresh whole state closes the gap; ticks after it are kept.
                // Ops before the gap are useless now: start a new lineage.
                let (from, tick) = (next.from, next.tick);
                *self = Self::state_only(&next.world, state, true);
                self.inputs = next.inputs;
                self.changes = next.changes;
                if from <= tick {
                    self.from = from;
                }
                self.tick = self.tick.max(tick);
            } else {
                self.tick = next.tick;
            }
            return;
        }
        self.tick = next.tick;
        self.inputs.extend(next.inputs);
        self.changes.extend(next.changes);
        if next.state.is_some() {
            self.state = next.state;
        }
    }

    /// Composes the change sets into one (on the writer thread). Sets the
    /// replication server no longer holds are composed in place; only one it
    /// still shares (the newest tick's) is copied.
    pub fn compact(&mut self) {
        if self.changes.len() < 2 {
            return;
        }
        let mut sets = std::mem::take(&mut self.changes).into_iter();
        let mut composed = sets.next().map(Arc::unwrap_or_clone).unwrap_or_default();
        for next in sets {
            composed.compose(Arc::unwrap_or_clone(next));
        }
        self.changes.push(Arc::new(composed));
    }

    /// The composed change set, if the job covers ticks. Call
    /// [`TickJob::compact`] first.
    pub fn composed(&self) -> Option<&FullChangeSet> {
        debug_assert!(self.changes.len() <= 1, "compact first");
        self.changes.last().map(|set| &**set)
    }

    /// Drops the covered ticks (the writer is past its memory bound): nothing
    /// but a later whole state can be written for this room now.
    pub fn drop_ticks(&mut self) -> u64 {
        let dropped = if self.has_ops() { self.ticks() } else { 0 };
        self.gap = true;
        self.inputs.clear();
        self.changes.clear();
        self.state = None;
        dropped
    }

    /// A rough size in bytes, for the writer's memory bound.
    pub fn approx_bytes(&self) -> usize {
        let changes: usize = self.changes.iter().map(|c| c.len() * 48).sum();
        let inputs: usize = self.inputs.iter().map(|(_, i)| 16 + i.len() * 24).sum();
        let state = self
            .state
            .as_ref()
            .map_or(0, |a| a.state.entities.len() * 96);
        changes + inputs + state
    }
}
