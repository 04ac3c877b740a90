//! The scheduler's rotation events for watchers: the live broadcast, and a
//! bounded backlog of the most recent ones, so a watcher that connects now
//! (a dashboard being opened) can start from the recent past.
//!
//! Every event gets a sequence number and the time it happened. Numbers
//! start at the daemon's start time in microseconds since the epoch and go
//! up by one per event, so they also keep increasing across a restart: a
//! watcher that reconnects with the last number it saw (SSE's
//! `Last-Event-ID`) is sent exactly what it missed, from this process or a
//! newer one.
//!
//! The backlog is bounded twice: at most [`BACKLOG_EVENTS`] events and at
//! most [`BACKLOG_BYTES`] of their text (an error message may be 64 KiB and
//! a step may name many paths), the oldest going first. An event that alone
//! is larger than the byte bound is broadcast but not kept. Events hold no
//! secret values ([`RotationEvent`] has no field for one), so neither does
//! the backlog.
//!
//! Taking the backlog and subscribing happen under one lock with
//! publishing, so a watcher's backlog and live events neither overlap nor
//! leave a gap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rotator_core::rotation::RotationEvent;
use time::OffsetDateTime;
use tokio::sync::broadcast;

/// How many recent events the backlog keeps at most.
pub const BACKLOG_EVENTS: usize = 200;
/// How many bytes of event text the backlog keeps at most.
pub const BACKLOG_BYTES: usize = 1 << 20;
/// How many events a slow live watcher may fall behind before it is told
/// it lagged.
const LIVE_CAPACITY: usize = 1024;

/// A rotation event as watchers see it: numbered and timed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedEvent {
    /// Increases by one per event; see the module documentation.
    pub seq: u64,
    /// When the daemon published it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub event: RotationEvent,
}

impl FeedEvent {
    /// What the event weighs in the backlog: its text plus a fixed overhead
    /// for the fields that are not text.
    pub fn weight(&self) -> usize {
        let e = &self.event;
        let texts = [&e.job, &e.plugin, &e.plugin_sha256, &e.rotation_id, &e.actor];
        128 + texts.iter().map(|s| s.len()).sum::<usize>()
            + e.vault_paths.iter().map(|p| p.len() + 24).sum::<usize>()
            + e.error.as_ref().map_or(0, String::len)
    }
}

/// The most recent events, oldest first, within both bounds.
#[derive(Debug, Default)]
pub struct Backlog {
    events: VecDeque<Arc<FeedEvent>>,
    bytes: usize,
}

impl Backlog {
    /// Keep `event` as the newest, dropping the oldest until both bounds hold.
    pub fn push(&mut self, event: Arc<FeedEvent>) {
        let weight = event.weight();
        if weight > BACKLOG_BYTES {
            return;
        }
        self.bytes += weight;
        self.events.push_back(event);
        while self.events.len() > BACKLOG_EVENTS || self.bytes > BACKLOG_BYTES {
            let old = self.events.pop_front().expect("over a bound, so not empty");
            self.bytes -= old.weight();
        }
    }

    /// The newest `limit` events with a sequence number above `after`, oldest first.
    pub fn since(&self, after: Option<u64>, limit: usize) -> Vec<Arc<FeedEvent>> {
        // Numbers increase from oldest to newest.
        let newer = self.events.partition_point(|e| after.is_some_and(|a| e.seq <= a));
        let start = newer.max(self.events.len().saturating_sub(limit));
        self.events.range(start..).cloned().collect()
    }

    /// How many events are kept, and their weight.
    pub fn size(&self) -> (usize, usize) {
        (self.events.len(), self.bytes)
    }
}

/// The live broadcast and the backlog, published to together.
pub struct Feed {
    inner: Mutex<(Backlog, u64)>,
    live: broadcast::Sender<Arc<FeedEvent>>,
}

impl Default for Feed {
    fn default() -> Self {
        let start = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
        Self {
            inner: Mutex::new((Backlog::default(), u64::try_from(start).unwrap_or(0))),
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }
}

impl Feed {
    /// Number, time, keep and broadcast one event.
    pub fn publish(&self, event: RotationEvent) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.1 += 1;
        let event = Arc::new(FeedEvent { seq: inner.1, at: OffsetDateTime::now_utc(), event });
        inner.0.push(event.clone());
        // No subscribers is fine.
        let _ = self.live.send(event);
    }

    /// The recent events after `after` (at most `limit`, oldest first) and
    /// a receiver of every event published from then on.
    pub fn subscribe(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> (Vec<Arc<FeedEvent>>, broadcast::Receiver<Arc<FeedEvent>>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.0.since(after, limit), self.live.subscribe())
    }
}

#[cfg(test)]
#[path = "feed_tests.rs"]
mod tests;
