//! The `log` import: plugin messages into the host's log.
//!
//! Lines are buffered per step and written by the run after the step,
//! through the redactor (the step may have produced the secret a line
//! mentions). The buffer is bounded by the job's [`OutputLimits`]: at most
//! `log_lines` lines, each stored up to twice `log_line` bytes. The extra
//! room lets the redactor see a secret that starts before the cut whole, so
//! the cut never shows part of one; what is past the stored part is only
//! counted. Lines over the count are dropped and counted, and the run writes
//! one closing line saying how many.

use crate::plugin::limits::OutputLimits;

/// Severity of a plugin's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// One buffered log line: what was kept of it and how many bytes were not.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    /// Bytes of the message past `message`, dropped at once.
    pub cut: usize,
}

/// A step's log lines, bounded.
#[derive(Debug, Default)]
pub struct LogBuffer {
    pub lines: Vec<LogLine>,
    /// Lines past the cap, and their bytes.
    pub dropped_lines: usize,
    pub dropped_bytes: usize,
    max_lines: usize,
    /// Bytes of a line stored (twice the shown cap; see the module note).
    stored: usize,
}

impl LogBuffer {
    pub fn new(limits: &OutputLimits) -> Self {
        Self { max_lines: limits.log_lines, stored: limits.log_line.saturating_mul(2), ..Self::default() }
    }

    /// Keep a line, or count it if the step's lines are used up.
    pub fn push(&mut self, level: LogLevel, mut message: String) {
        if self.lines.len() >= self.max_lines {
            self.dropped_lines += 1;
            self.dropped_bytes = self.dropped_bytes.saturating_add(message.len());
            return;
        }
        let mut cut = 0;
        if message.len() > self.stored {
            let mut at = self.stored;
            while !message.is_char_boundary(at) {
                at -= 1;
            }
            cut = message.len() - at;
            message.truncate(at);
            message.shrink_to_fit();
        }
        self.lines.push(LogLine { level, message, cut });
    }

    /// Take the step's lines and counts, leaving the buffer empty.
    pub fn take(&mut self) -> LogBuffer {
        let (max_lines, stored) = (self.max_lines, self.stored);
        std::mem::replace(self, Self { max_lines, stored, ..Self::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_keeps_at_most_its_lines_and_bytes_and_counts_the_rest() {
        let limits = OutputLimits { log_lines: 2, log_line: 256, ..OutputLimits::DEFAULT };
        let mut b = LogBuffer::new(&limits);
        b.push(LogLevel::Info, "é".repeat(1000));
        b.push(LogLevel::Info, "short".into());
        b.push(LogLevel::Warn, "x".repeat(70));
        b.push(LogLevel::Warn, "y".repeat(30));
        let taken = b.take();
        assert_eq!(taken.lines.len(), 2);
        assert_eq!(taken.lines[0].message.len(), 512);
        assert_eq!(taken.lines[0].cut, 2000 - 512);
        assert_eq!((taken.dropped_lines, taken.dropped_bytes), (2, 100));
        assert!(b.lines.is_empty() && b.dropped_lines == 0);
        b.push(LogLevel::Info, "again".into());
        assert_eq!(b.lines.len(), 1);
    }
}
