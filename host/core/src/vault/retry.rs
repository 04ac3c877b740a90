//! When and how long to wait before trying Vault again.
//!
//! Two policies live here, both pure so they can be tested without a clock:
//! [`RequestRetry`] for one request (a few quick tries on connection errors,
//! 5xx, 429 and 503-sealed; never on other 4xx), and [`Backoff`] for the
//! long-running loops (token and lease renewal): 10 s doubling to 5 min,
//! jittered, and never past a deadline such as the token's expiry.

use std::time::Duration;

use rand::Rng;

use super::VaultError;

/// Retries of a single request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRetry {
    /// Tries in all, the first included. 1 disables retries.
    pub attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base: Duration,
    /// Upper bound on one delay.
    pub max: Duration,
}

impl Default for RequestRetry {
    fn default() -> Self {
        Self { attempts: 4, base: Duration::from_millis(250), max: Duration::from_secs(5) }
    }
}

impl RequestRetry {
    /// No retries: one try only.
    pub const NONE: Self = Self { attempts: 1, base: Duration::ZERO, max: Duration::ZERO };

    /// Should try `attempt` (1-based, just failed with `err`) be followed by
    /// another?
    pub fn should_retry(&self, attempt: u32, err: &VaultError) -> bool {
        attempt < self.attempts && err.is_transient()
    }

    /// The delay after failed try `attempt` (1-based): "full jitter", a
    /// random point in `[0, min(max, base * 2^(attempt-1))]`, so clients that
    /// failed together do not retry together.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let cap = exp(self.base, attempt.saturating_sub(1)).min(self.max);
        cap.mul_f64(rng.random::<f64>())
    }
}

/// `base * 2^n`, saturating.
fn exp(base: Duration, n: u32) -> Duration {
    base.checked_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX)).unwrap_or(Duration::MAX)
}

/// Backoff for renewal loops after consecutive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// Vault Agent's numbers: 10 s doubling to 5 min.
    fn default() -> Self {
        Self { initial: Duration::from_secs(10), max: Duration::from_secs(300) }
    }
}

impl Backoff {
    /// Wait after the `failures`-th consecutive failure (1-based): the
    /// doubled delay with ±20 % jitter, capped at `max` and at `until` (the
    /// time left before something expires, if any; half of it, so one more
    /// try still fits before expiry).
    pub fn delay(&self, failures: u32, until: Option<Duration>, rng: &mut impl Rng) -> Duration {
        let base = exp(self.initial, failures.saturating_sub(1)).min(self.max);
        let jittered = base.mul_f64(0.8 + 0.4 * rng.random::<f64>()).min(self.max);
        match until {
            Some(left) => jittered.min(left / 2).max(Duration::from_secs(1).min(left)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn request_retries_only_transient_errors_and_stops_at_the_limit() {
        let p = RequestRetry::default();
        let sealed = VaultError::Status { status: 503, method: "GET".into(), path: "x".into(), errors: vec![] };
        let denied = VaultError::Status { status: 403, method: "GET".into(), path: "x".into(), errors: vec![] };
        assert!(p.should_retry(1, &sealed));
        assert!(p.should_retry(3, &sealed));
        assert!(!p.should_retry(4, &sealed));
        assert!(!p.should_retry(1, &denied));
        assert!(!RequestRetry::NONE.should_retry(1, &sealed));
    }

    #[test]
    fn request_delays_are_jittered_within_the_doubling_cap() {
        let p = RequestRetry::default();
        let mut r = rng();
        for attempt in 1..10 {
            let cap = exp(p.base, attempt - 1).min(p.max);
            for _ in 0..50 {
                assert!(p.delay(attempt, &mut r) <= cap);
            }
        }
    }

    #[test]
    fn renewal_backoff_doubles_from_10s_to_5min_with_jitter() {
        let b = Backoff::default();
        let mut r = rng();
        for (failures, nominal) in [(1, 10.0), (2, 20.0), (3, 40.0), (5, 160.0), (6, 300.0), (20, 300.0)] {
            let d = b.delay(failures, None, &mut r).as_secs_f64();
            assert!(d >= nominal * 0.8 - 1e-9 && d <= (nominal * 1.2f64).min(300.0) + 1e-9, "{failures}: {d}");
        }
    }

    #[test]
    fn renewal_backoff_never_waits_past_half_the_time_left() {
        let b = Backoff::default();
        let mut r = rng();
        assert_eq!(b.delay(6, Some(Duration::from_secs(60)), &mut r), Duration::from_secs(30));
        assert_eq!(b.delay(1, Some(Duration::from_millis(400)), &mut r), Duration::from_millis(400));
    }
}
