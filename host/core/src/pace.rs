//! A rate limit that spaces events evenly: at most `per_second`, each one
//! `1 / per_second` after the one before, never in bursts. Lease renewals
//! use it (`[vault] lease_renewals_per_second`) and so do scheduled
//! rotations (`[daemon] max_rotations_per_second`), so a daemon that comes
//! back after a long outage catches up at a steady rate instead of firing
//! everything that came due at once.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Hands out start times `1 / per_second` apart. Cheap to share behind an
/// `Arc`; a caller that gives up waiting still used its turn (the next
/// caller's turn is not moved earlier), which errs on the slow side.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl Pace {
    /// At most `per_second` events per second (0 is taken as 1).
    pub fn per_second(per_second: u32) -> Self {
        Self { interval: Duration::from_secs(1) / per_second.max(1), next_free: Mutex::new(None) }
    }

    /// Wait for this caller's turn.
    pub async fn acquire(&self) {
        let at = {
            let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn turns_are_evenly_spaced_and_an_idle_pace_starts_at_once() {
        let pace = std::sync::Arc::new(Pace::per_second(5));
        let start = Instant::now();
        let waits: Vec<_> = (0..10)
            .map(|_| {
                let pace = pace.clone();
                tokio::spawn(async move {
                    pace.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut at = Vec::new();
        for w in waits {
            at.push(w.await.unwrap() - start);
        }
        at.sort();
        let expected: Vec<Duration> = (0..10).map(|k| Duration::from_millis(200 * k)).collect();
        assert_eq!(at, expected);
        // Idle for longer than a turn: the next one is not owed a burst.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = Instant::now();
        pace.acquire().await;
        pace.acquire().await;
        assert_eq!(Instant::now() - idle, Duration::from_millis(200));
    }
}
