//! The own player's inputs: sent at once, held and repeated with the acks,
//! and predicted until the server applies them.

use std::time::Instant;

use kasagi_replication::client::ClientReplica;

use super::GameClient;
use crate::client::held_input::HeldInput;
use crate::client::prediction::{Predictor, StepFn};
use crate::protocol::ClientMessage;

impl GameClient {
    /// Sends a movement intent for the own player. It leaves at once rather
    /// than with the next [`GameClient::update`]: input latency is what a
    /// player feels, and the server applies it at its next tick.
    ///
    /// Delivery is unreliable: a lost input is not resent. A game that sends
    /// no input of its own each frame should use [`GameClient::hold_input`],
    /// which repeats the movement for it.
    pub fn send_input(&mut self, movement: [f32; 2], action: Option<u8>) {
        self.queue_input(movement, action);
        self.net.flush();
    }

    /// Sends `movement` at once, as [`GameClient::send_input`] does, and
    /// holds it: from then on [`GameClient::update`] repeats it once for
    /// every new server tick it receives, in the datagram that acknowledges
    /// that tick, and every [`HELD_INPUT_REPEAT`](crate::client::HELD_INPUT_REPEAT) when no tick arrives. A
    /// lost input is thereby replaced within a tick, at no datagram of its
    /// own. Hold `[0.0, 0.0]` to stand still, or
    /// [`GameClient::release_input`] to stop repeating.
    pub fn hold_input(&mut self, movement: [f32; 2]) {
        self.send_input(movement, None);
        self.held = Some(HeldInput::new(movement, Instant::now()));
    }

    /// Stops repeating the held movement (the server keeps applying the
    /// last one it received).
    pub fn release_input(&mut self) {
        self.held = None;
    }

    /// Queues the held movement if it is due (see [`HeldInput::due`]); a
    /// queued ack goes out in the same datagram.
    pub(super) fn repeat_held_input(&mut self, tick_arrived: bool) {
        if let Some(movement) = self
            .held
            .as_mut()
            .and_then(|held| held.due(tick_arrived, Instant::now()))
        {
            self.queue_input(movement, None);
        }
    }

    /// Queues an input for the next flush, numbered and recorded for prediction.
    fn queue_input(&mut self, movement: [f32; 2], action: Option<u8>) {
        self.input_sequence = self.input_sequence.wrapping_add(1);
        if let Some(p) = &mut self.predictor {
            p.sent(self.input_sequence, movement, Instant::now());
        }
        let tick = self
            .app
            .world()
            .resource::<ClientReplica>()
            .tick()
            .unwrap_or(0);
        self.net.send(&ClientMessage::Input {
            tick,
            sequence: self.input_sequence,
            movement,
            action,
        });
    }

    /// Turns on prediction of the own player, moved by `step` (the game's movement rule).
    pub fn predict_with(&mut self, step: StepFn) {
        self.predictor = Some(Predictor::new(step));
    }

    /// The own player's predicted position: `authoritative` (read from the
    /// replica by the game) plus the replay of inputs the server has not applied.
    pub fn predicted_position(&self, authoritative: [f32; 2]) -> [f32; 2] {
        match &self.predictor {
            Some(p) => p.predict(authoritative, Instant::now()),
            None => authoritative,
        }
    }

    /// Inputs sent and not yet applied by the server.
    pub fn unacked_inputs(&self) -> usize {
        self.predictor.as_ref().map_or(0, |p| p.pending())
    }
}
