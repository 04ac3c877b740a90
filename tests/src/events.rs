//! An observer that keeps every rotation event, for tests that check what
//! a rotation or a daemon reported.

use std::sync::Mutex;

use rotator_core::rotation::{Observer, RotationEvent};

/// Every rotation event heard, in order.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<RotationEvent>>);

impl Observer for Recorder {
    fn event(&self, event: &RotationEvent) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event.clone());
    }
}

impl Recorder {
    /// Every event so far.
    pub fn all(&self) -> Vec<RotationEvent> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events of `job`'s `step` (`rotation` for whole rotations).
    pub fn of(&self, job: &str, step: &str) -> Vec<RotationEvent> {
        self.all().into_iter().filter(|e| e.job == job && e.step == step).collect()
    }
}
