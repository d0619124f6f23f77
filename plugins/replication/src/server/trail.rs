//! Where an entity was at recent ticks: the base of position deltas.
//!
//! A client that held tick `B` (the baseline of a change set: the chain's
//! tip, or the tick it acknowledged) holds, for every entity it holds, the
//! server's quantized position of that entity at `B`: that is what applying a
//! change set guarantees. So the server does not need to track positions per
//! client: a delta against `B` needs only each entity's position at `B`, which
//! this short per-entity trail answers for recent ticks. When it cannot (the
//! entity moved more often than the trail remembers since `B`), the move is
//! sent absolute, which is always correct.

use crate::change_set::QPos;

/// Position changes remembered per entity. Four covers a baseline three ticks
/// old for an entity moving every tick, and far more for most entities.
const TRAIL: usize = 4;

/// The last few position changes of one entity, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct PositionTrail {
    /// `(tick, position from that tick on)`; `None`: the entity had no position.
    changes: [(u64, Option<QPos>); TRAIL],
    len: u8,
}

impl PositionTrail {
    /// Records that from `tick` on the position is `qpos`.
    pub fn record(&mut self, tick: u64, qpos: Option<QPos>) {
        let len = usize::from(self.len);
        if len > 0 && self.changes[len - 1].0 == tick {
            // Several changes within one tick: clients only ever see the last.
            self.changes[len - 1].1 = qpos;
        } else if len < TRAIL {
            self.changes[len] = (tick, qpos);
            self.len += 1;
        } else {
            // A fixed-size shift compiles to a few moves; `rotate_left`
            // called `memcpy` for every move of an entity moving every tick.
            self.changes.copy_within(1.., 0);
            self.changes[TRAIL - 1] = (tick, qpos);
        }
    }

    /// The position at `tick`: `Some(None)` when the entity had none,
    /// `None` when the trail does not reach back that far.
    pub fn at(&self, tick: u64) -> Option<Option<QPos>> {
        let changes = &self.changes[..usize::from(self.len)];
        changes
            .iter()
            .rev()
            .find(|(t, _)| *t <= tick)
            .map(|(_, q)| *q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: i32) -> Option<QPos> {
        Some(QPos { x, y: 0 })
    }

    #[test]
    fn answers_for_remembered_ticks_only() {
        let mut trail = PositionTrail::default();
        assert_eq!(trail.at(5), None);
        trail.record(3, q(1));
        trail.record(3, q(2)); // same tick: replaced
        assert_eq!(trail.at(2), None, "before the entity had a position");
        assert_eq!(trail.at(3), Some(q(2)));
        assert_eq!(trail.at(100), Some(q(2)));
        for (t, pos) in [(5, q(3)), (6, None), (8, q(4)), (9, q(5))] {
            trail.record(t, pos);
        }
        // Four remembered: 5, 6, 8, 9; tick 3 fell off.
        assert_eq!(trail.at(4), None);
        assert_eq!(trail.at(5), Some(q(3)));
        assert_eq!(trail.at(6), Some(None));
        assert_eq!(trail.at(7), Some(None));
        assert_eq!(trail.at(8), Some(q(4)));
        assert_eq!(trail.at(9), Some(q(5)));
    }
}
