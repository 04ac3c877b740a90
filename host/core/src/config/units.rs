//! Human units in config values: durations (`"10s"`, `"1h 30m"`) and byte
//! sizes (`"64MiB"`, `"512KiB"`, or a plain number of bytes).
//!
//! **Every duration has a documented range**, checked when the file is
//! parsed ([`Bounds`]). A value `check` accepts is one the daemon can run:
//! no interval so long that adding it to a date overflows, no zero timeout
//! that fails every request, no jitter that starts a run outside its window.
//! The README's table of ranges is checked against these constants by a test.

use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// The range a duration key accepts, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The key as the operator writes it, for messages.
    pub key: &'static str,
    pub min: Duration,
    pub max: Duration,
}

/// `[vault] timeout`: one request; zero would fail every call.
pub const VAULT_TIMEOUT: Bounds =
    Bounds { key: "vault.timeout", min: Duration::from_millis(100), max: Duration::from_secs(600) };
/// `[daemon] shutdown_grace`: zero abandons running rotations at once.
pub const SHUTDOWN_GRACE: Bounds = Bounds { key: "daemon.shutdown_grace", min: Duration::ZERO, max: HOUR };
/// `interval`: ten years is far beyond any rotation policy and far inside
/// the dates the scheduler can represent.
pub const INTERVAL: Bounds = Bounds { key: "interval", min: SECOND, max: Duration::from_secs(3650 * 86_400) };
/// `window`: Vault's own minimum rotation window, up to a year.
pub const WINDOW: Bounds = Bounds { key: "window", min: MINUTE, max: Duration::from_secs(366 * 86_400) };
/// `jitter = "…"`: also at most the window (cron) or the interval.
pub const JITTER: Bounds = Bounds { key: "jitter", min: Duration::ZERO, max: Duration::from_secs(366 * 86_400) };
/// `not_within.duration`.
pub const NOT_WITHIN: Bounds =
    Bounds { key: "not_within.duration", min: SECOND, max: Duration::from_secs(366 * 86_400) };
/// `retry.backoff`: the first retry's delay (later ones double, capped at an hour).
pub const BACKOFF: Bounds = Bounds { key: "retry.backoff", min: SECOND, max: DAY };

/// Why a duration value was refused; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all (`why` is the parser's reason).
    #[error("invalid {key} `{text}`: {why} (try \"30s\", \"5m\", \"1h\")")]
    Invalid { key: &'static str, text: String, why: String },
    /// A duration, but outside the key's [`Bounds`].
    #[error("{} must be between {} and {}", .0.key, show(.0.min), show(.0.max))]
    OutOfRange(Bounds),
}

impl Bounds {
    /// Parse `text` and check it lies in range; the message names the key.
    pub fn parse(&self, text: &str) -> Result<Duration, DurationError> {
        let d = humantime::parse_duration(text).map_err(|e| DurationError::Invalid {
            key: self.key,
            text: text.to_owned(),
            why: e.to_string(),
        })?;
        self.check(d)
    }

    /// Check an already parsed duration.
    pub fn check(&self, d: Duration) -> Result<Duration, DurationError> {
        if d < self.min || d > self.max {
            return Err(DurationError::OutOfRange(*self));
        }
        Ok(d)
    }
}

/// A duration in the largest unit that divides it (`"3650d"`, `"10m"`,
/// `"100ms"`), which the parser reads back.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let units = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)];
    units.iter().find(|(_, n)| ms.is_multiple_of(*n)).map_or(format!("{ms}ms"), |(unit, n)| format!("{}{unit}", ms / n))
}

/// serde `deserialize_with` functions for the bounded keys of sections that
/// serde reads whole; toml locates their errors at the value.
pub mod bounded {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    use super::Bounds;

    fn read<'de, D: Deserializer<'de>>(d: D, bounds: &Bounds) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        bounds.parse(&s).map_err(serde::de::Error::custom)
    }

    pub fn vault_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        read(d, &super::VAULT_TIMEOUT)
    }

    pub fn shutdown_grace<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        read(d, &super::SHUTDOWN_GRACE)
    }
}

/// Why a byte size was refused. Each variant holds the value as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size `{0}` (try \"64MiB\")")]
    Invalid(String),
    #[error("unknown size unit `{unit}` in `{text}` (use B, KiB, MiB or GiB)")]
    UnknownUnit { unit: String, text: String },
    #[error("size `{0}` is too large")]
    TooLarge(String),
}

/// Parse `"64MiB"`, `"1GiB"`, `"512KiB"`, `"1048576"`.
pub fn parse_bytes(s: &str) -> Result<usize, SizeError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| SizeError::Invalid(s.to_owned()))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(SizeError::UnknownUnit { unit: other.to_owned(), text: s.to_owned() }),
    };
    n.checked_mul(mult).ok_or_else(|| SizeError::TooLarge(s.to_owned()))
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Every bounded duration key.
    const RANGES: [Bounds; 7] = [VAULT_TIMEOUT, SHUTDOWN_GRACE, INTERVAL, WINDOW, JITTER, NOT_WITHIN, BACKOFF];

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("64MB").unwrap_err().to_string().contains("unknown size unit"));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn durations_outside_their_range_are_refused_by_name() {
        assert_eq!(VAULT_TIMEOUT.parse("0s").unwrap_err().to_string(), "vault.timeout must be between 100ms and 10m");
        assert_eq!(INTERVAL.parse("10000y").unwrap_err().to_string(), "interval must be between 1s and 3650d");
        assert_eq!(INTERVAL.parse("24h"), Ok(Duration::from_secs(86_400)));
        assert!(INTERVAL.parse("soon").unwrap_err().to_string().starts_with("invalid interval `soon`"));
    }

    /// The README's table of ranges is this table; a change to one shows here.
    #[test]
    fn the_readme_lists_every_range() {
        let readme = include_str!("../../../../README.md");
        for b in RANGES {
            let row = format!("| `{}` | {} | {} |", b.key, show(b.min), show(b.max));
            assert!(readme.contains(&row), "README lacks the row `{row}`");
        }
    }
}
