//! The `log` import: plugin messages into the host's log.
//!
//! Lines are buffered per step (bounded, so a chatty plugin cannot exhaust
//! memory) and written by the run after the step, through the redactor.

use super::HostState;
use crate::plugin::bindings::rotator::plugin::log::{Host, Level};

/// At most this many lines per step are kept; the rest are counted.
const MAX_LINES: usize = 256;
/// Longer lines are cut.
const MAX_LINE: usize = 4096;

/// One buffered log line.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

impl Host for HostState {
    fn write(&mut self, level: Level, mut message: String) {
        if self.logs.len() >= MAX_LINES {
            return;
        }
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        if self.logs.len() == MAX_LINES - 1 {
            message = "further log lines of this step were dropped".into();
        }
        self.logs.push(LogLine { level, message });
    }
}
