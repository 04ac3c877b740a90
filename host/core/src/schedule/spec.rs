//! When one job may rotate: its cadence (interval or cron), window, jitter,
//! retry policy and the jobs it must keep apart from.
//!
//! Everything here is pure: functions of wall-clock times (UTC) and a random
//! source, so the rules are tested without a clock. The scheduler
//! ([`super::Scheduler`]) turns their answers into deadlines.
//!
//! The rules follow Vault's automated rotation and AWS Secrets Manager:
//! - `interval`: the next slot is at most one interval after the last
//!   rotation: on the job's own grid (`phase + k × interval`, the phase
//!   drawn from a hash of the job id), so jobs that start together spread
//!   over their interval instead of moving in lock-step, and keep their
//!   spread across restarts (see [`Schedule::spread_for`]).
//! - `cron` (5 fields, UTC): slots are the expression's times; a `window`
//!   says how long after its slot a rotation may still start. A slot whose
//!   window has passed (daemon down, Vault down) is skipped, not run late.
//! - Missed slots without a window are caught up once, never once per slot.
//! - `jitter`: a random start inside the window (`true`), or up to a
//!   duration after the slot, drawn once per slot so restarts keep it.
//! - `not_within`: two paired jobs never start closer than a duration.
//!
//! **Date arithmetic saturates** ([`later`], [`earlier`]). The config bounds
//! every duration, but dates also come from state records in Vault, which
//! anyone with write access there can set to year 9999; the latest
//! representable instant means "not in this calendar", never a panic.

use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

use super::cron::Cron;

/// `at + d`, or the last representable instant if that is past it.
pub fn later(at: OffsetDateTime, d: Duration) -> OffsetDateTime {
    at.saturating_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

/// `at - d`, or the first representable instant if that is before it.
pub fn earlier(at: OffsetDateTime, d: Duration) -> OffsetDateTime {
    at.saturating_sub(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

/// The latest point of the grid `phase + k × every` (Unix time) at or
/// before `at`: with `at` one interval after the last rotation, the one
/// grid point in `(last, last + every]`. Dates the arithmetic cannot hold
/// (year 9999 saturation) stay as they are.
fn on_grid(at: OffsetDateTime, every: Duration, phase: Duration) -> OffsetDateTime {
    let (every, phase) = (every.as_nanos() as i128, phase.as_nanos() as i128);
    if every <= 0 {
        return at;
    }
    let t = at.unix_timestamp_nanos();
    let point = phase + (t - phase).div_euclid(every) * every;
    OffsetDateTime::from_unix_timestamp_nanos(point).unwrap_or(at)
}

/// How often a job rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cadence {
    /// One interval after the last rotation.
    Interval(Duration),
    /// At the expression's times, UTC.
    Cron(Cron),
}

/// Random delay added to a slot's start, spreading load (AWS does the same
/// inside its rotation window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    #[default]
    None,
    /// Anywhere inside the window.
    InWindow,
    /// Up to this long after the slot.
    Up(Duration),
}

/// Keep this job's rotations at least `duration` away from `job`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWithin {
    pub job: String,
    pub duration: Duration,
}

/// What happens when a rotation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per slot (cycle), the first included.
    pub attempts: u32,
    /// Delay before the second try; doubles for each next one.
    pub backoff: Duration,
    /// After this many failed cycles in a row the job needs attention and
    /// is no longer rotated automatically.
    pub needs_attention_after: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, backoff: Duration::from_secs(30), needs_attention_after: 3 }
    }
}

/// The longest wait between two tries of one cycle.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

impl RetryPolicy {
    /// How long to wait after failed try number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

/// A job's whole schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub cadence: Cadence,
    /// Cron only: how long after a slot a rotation may still start.
    pub window: Option<Duration>,
    pub jitter: Jitter,
    pub not_within: Vec<NotWithin>,
    pub retry: RetryPolicy,
    /// Interval only: where on the time axis the job's slots lie (`phase +
    /// k × interval`, Unix time). `None`: one interval after the last
    /// rotation, wherever that falls.
    pub phase: Option<Duration>,
}

impl Schedule {
    /// Rotate every `interval`, no window, default retries.
    pub fn every(interval: Duration) -> Self {
        Self {
            cadence: Cadence::Interval(interval),
            window: None,
            jitter: Jitter::None,
            not_within: Vec::new(),
            retry: RetryPolicy::default(),
            phase: None,
        }
    }

    /// The same schedule with an interval job's slots on a grid of its own:
    /// the phase is a hash of `job` (sha256) modulo the interval, so it is
    /// the same on every replica and after every restart, and jobs are
    /// spread evenly over the interval. Cron jobs are unchanged (their
    /// `jitter` spreads them).
    pub fn spread_for(mut self, job: &str) -> Self {
        if let Cadence::Interval(every) = self.cadence {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(job.as_bytes());
            let hash = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
            let nanos = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX).max(1);
            self.phase = Some(Duration::from_nanos(hash % nanos));
        }
        self
    }

    /// The first slot after `now` for a job last rotated at `last`. An
    /// interval job never rotated is due at once.
    pub fn next_slot(&self, last: Option<OffsetDateTime>, now: OffsetDateTime) -> OffsetDateTime {
        match &self.cadence {
            Cadence::Interval(every) => match (last, self.phase) {
                (Some(last), None) => later(last, *every),
                (Some(last), Some(phase)) => on_grid(later(last, *every), *every, phase),
                (None, _) => now,
            },
            Cadence::Cron(cron) => cron.next_after(now).unwrap_or(now.saturating_add(time::Duration::days(366))),
        }
    }

    /// When to start the run for `slot`: the slot plus its jitter.
    pub fn start_for(&self, slot: OffsetDateTime, rng: &mut impl Rng) -> OffsetDateTime {
        let spread = match (self.jitter, self.window) {
            (Jitter::None, _) | (Jitter::InWindow, None) => Duration::ZERO,
            (Jitter::InWindow, Some(w)) => w,
            (Jitter::Up(d), Some(w)) => d.min(w),
            (Jitter::Up(d), None) => d,
        };
        if spread.is_zero() {
            return slot;
        }
        // Whole milliseconds, and never the window's very end.
        let ms = rng.random_range(0..spread.as_millis().max(1) as u64);
        later(slot, Duration::from_millis(ms))
    }

    /// May a run for `slot` still start at `now`?
    pub fn window_open(&self, slot: OffsetDateTime, now: OffsetDateTime) -> bool {
        match self.window {
            Some(w) => now < later(slot, w),
            None => true,
        }
    }

    /// The end of `slot`'s window, if it has one.
    pub fn window_end(&self, slot: OffsetDateTime) -> Option<OffsetDateTime> {
        self.window.map(|w| later(slot, w))
    }
}

/// The first time two cron schedules with windows *must* start within
/// `apart` of each other, whatever the scheduler does, looking a year ahead
/// from `from`. Schedules without windows can always be delayed, so they
/// never must collide.
pub fn forced_collision(a: &Schedule, b: &Schedule, apart: Duration, from: OffsetDateTime) -> Option<OffsetDateTime> {
    let (Cadence::Cron(ca), Cadence::Cron(cb)) = (&a.cadence, &b.cadence) else { return None };
    let (Some(wa), Some(wb)) = (a.window, b.window) else { return None };
    let horizon = from.saturating_add(time::Duration::days(366));
    let mut slot_a = ca.next_after(from)?;
    for _ in 0..2000 {
        if slot_a > horizon {
            return None;
        }
        // The farthest apart the starts for `slot_a` and a b slot `s` can
        // be is max(slot_a + wa - s, s + wb - slot_a): the latest start of
        // one against the earliest of the other. It is below `apart` exactly
        // when `s` lies strictly between `lo` and `hi`, so the first b slot
        // after `lo` decides: one cron step per a slot, however wide the
        // windows (walking every b slot in between took minutes for
        // every-minute schedules with long windows).
        let lo = earlier(later(slot_a, wa), apart);
        let hi = later(earlier(slot_a, wb), apart);
        if lo < hi && cb.next_after(lo).is_some_and(|s| s < hi) {
            return Some(slot_a);
        }
        slot_a = ca.next_after(slot_a)?;
    }
    None
}

/// Describe a schedule for people.
pub fn describe(s: &Schedule) -> String {
    let mut text = match &s.cadence {
        Cadence::Interval(d) => format!("every {}", humantime::format_duration(*d)),
        Cadence::Cron(c) => format!("cron {c} (UTC)"),
    };
    if let Some(w) = s.window {
        text.push_str(&format!(", window {}", humantime::format_duration(w)));
    }
    text
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn interval_jobs_spread_over_their_interval_on_grids_of_their_own() {
        let hour = Duration::from_secs(3600);
        let last = datetime!(2026-11-22 10:00 UTC);
        let mut starts = Vec::new();
        for i in 0..200 {
            let s = Schedule::every(hour).spread_for(&format!("job-{i}"));
            assert_eq!(s, Schedule::every(hour).spread_for(&format!("job-{i}")), "the same phase every time");
            let slot = s.next_slot(Some(last), last);
            // Never later than one interval, never at or before the last rotation.
            assert!(slot > last && slot <= later(last, hour), "{slot}");
            // The next cycle keeps the phase: exactly one interval on.
            let settled = later(slot, Duration::from_millis(250));
            assert_eq!(s.next_slot(Some(settled), settled), later(slot, hour));
            starts.push((slot - last).whole_seconds());
        }
        // Spread: every 6-minute tenth of the hour holds some jobs (200 jobs,
        // a uniform hash; the chance of an empty tenth is below 1e-8).
        for tenth in 0..10 {
            let n = starts.iter().filter(|&&d| (d - 1) / 360 == tenth).count();
            assert!(n > 0, "tenth {tenth} is empty: {starts:?}");
        }
        // A cron job is not moved; a job without a phase keeps the old rule.
        assert_eq!(Schedule::every(hour).next_slot(Some(last), last), later(last, hour));
        let c = cron("0 3 * * *", None).spread_for("x");
        assert_eq!(c.phase, None);
    }

    fn cron(expr: &str, window: Option<u64>) -> Schedule {
        Schedule {
            cadence: Cadence::Cron(expr.parse().unwrap()),
            window: window.map(Duration::from_secs),
            ..Schedule::every(Duration::from_secs(1))
        }
    }

    #[test]
    fn interval_slots_follow_the_last_rotation_and_a_new_job_is_due_now() {
        let s = Schedule::every(Duration::from_secs(3600));
        let now = datetime!(2026-11-22 10:00 UTC);
        assert_eq!(s.next_slot(None, now), now);
        assert_eq!(s.next_slot(Some(datetime!(2026-11-22 09:30 UTC)), now), datetime!(2026-11-22 10:30 UTC));
        // Down for a day: one slot in the past, caught up once.
        assert_eq!(s.next_slot(Some(datetime!(2026-11-21 00:00 UTC)), now), datetime!(2026-11-21 01:00 UTC));
    }

    #[test]
    fn cron_slots_and_windows() {
        let s = cron("0 3 * * *", Some(7200));
        let now = datetime!(2026-11-22 10:00 UTC);
        assert_eq!(s.next_slot(None, now), datetime!(2026-11-23 03:00 UTC));
        let slot = datetime!(2026-11-22 03:00 UTC);
        assert!(s.window_open(slot, datetime!(2026-11-22 04:59 UTC)));
        assert!(!s.window_open(slot, datetime!(2026-11-22 05:00 UTC)));
        assert!(cron("0 3 * * *", None).window_open(slot, now));
    }

    #[test]
    fn jitter_stays_inside_the_window_and_is_spread() {
        let mut s = cron("0 3 * * *", Some(3600));
        s.jitter = Jitter::InWindow;
        let slot = datetime!(2026-11-22 03:00 UTC);
        let mut rng = StdRng::seed_from_u64(7);
        let starts: Vec<_> = (0..200).map(|_| s.start_for(slot, &mut rng)).collect();
        assert!(starts.iter().all(|t| *t >= slot && *t < slot + Duration::from_secs(3600)));
        let late = starts.iter().filter(|t| **t >= slot + Duration::from_secs(1800)).count();
        assert!((60..140).contains(&late), "{late} of 200 in the second half");
        s.jitter = Jitter::Up(Duration::from_secs(60));
        assert!(s.start_for(slot, &mut rng) < slot + Duration::from_secs(60));
    }

    #[test]
    fn retry_backoff_doubles_and_is_capped() {
        let r = RetryPolicy { attempts: 5, backoff: Duration::from_secs(10), needs_attention_after: 2 };
        assert_eq!(r.delay_after(1), Duration::from_secs(10));
        assert_eq!(r.delay_after(3), Duration::from_secs(40));
        assert_eq!(r.delay_after(40), MAX_BACKOFF);
    }

    #[test]
    fn paired_cron_jobs_with_tight_windows_must_collide() {
        let from = datetime!(2026-11-22 00:00 UTC);
        let hour = Duration::from_secs(3600);
        // Same slot, 10-minute windows, must be an hour apart: impossible.
        let a = cron("0 3 * * *", Some(600));
        assert_eq!(forced_collision(&a, &a.clone(), hour, from), Some(datetime!(2026-11-22 03:00 UTC)));
        // Two-hour windows leave room to keep them an hour apart.
        let wide = cron("0 3 * * *", Some(7200));
        assert_eq!(forced_collision(&wide, &wide.clone(), hour, from), None);
        // Different days never meet.
        let mon = cron("0 3 * * mon", Some(600));
        let thu = cron("0 3 * * thu", Some(600));
        assert_eq!(forced_collision(&mon, &thu, hour, from), None);
        // Sunday 03:00 vs daily 03:30, 10-minute windows: collide on Sunday.
        let sun = cron("0 3 * * sun", Some(600));
        let daily = cron("30 3 * * *", Some(600));
        assert_eq!(forced_collision(&sun, &daily, hour, from), Some(datetime!(2026-11-22 03:00 UTC)));
        // No windows: the scheduler can always delay one of them.
        assert_eq!(forced_collision(&cron("0 3 * * *", None), &cron("0 3 * * *", None), hour, from), None);
    }

    /// A state record may say year 9999 (anyone with write access to it
    /// can); the next slot saturates instead of panicking, and so do
    /// windows and jitter after it.
    #[test]
    fn dates_past_the_calendar_saturate() {
        let end = time::PrimitiveDateTime::MAX.assume_utc();
        let ten_years = Duration::from_secs(3650 * 86_400);
        let s = Schedule::every(ten_years);
        assert_eq!(s.next_slot(Some(datetime!(9999-12-31 00:00 UTC)), datetime!(2026-12-05 00:00 UTC)), end);
        let mut windowed = cron("59 23 31 12 *", Some(366 * 86_400));
        windowed.jitter = Jitter::InWindow;
        assert_eq!(windowed.next_slot(None, end), end, "no cron slot after the calendar's end");
        assert_eq!(windowed.window_end(end), Some(end));
        assert_eq!(windowed.start_for(end, &mut StdRng::seed_from_u64(1)), end);
        let start = time::PrimitiveDateTime::MIN.assume_utc();
        assert_eq!(earlier(later(start, Duration::from_secs(86_400)), ten_years), start);
    }

    /// The direct search: every b slot near every a slot (the rule as
    /// stated, slow for dense schedules), as the oracle for the shortcut.
    fn forced_collision_by_walking(
        a: &Schedule,
        b: &Schedule,
        apart: Duration,
        from: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let (Cadence::Cron(ca), Cadence::Cron(cb)) = (&a.cadence, &b.cadence) else { return None };
        let (wa, wb) = (a.window?, b.window?);
        let mut slot_a = ca.next_after(from)?;
        for _ in 0..2000 {
            if slot_a > from + time::Duration::days(366) {
                return None;
            }
            let mut slot_b = cb.next_after(earlier(slot_a, wb + apart + Duration::from_secs(60)))?;
            while slot_b < later(slot_a, wa + apart) {
                if (later(slot_a, wa) - slot_b).max(later(slot_b, wb) - slot_a) < apart {
                    return Some(slot_a);
                }
                slot_b = cb.next_after(slot_b)?;
            }
            slot_a = ca.next_after(slot_a)?;
        }
        None
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 500,
            rng_seed: proptest::test_runner::RngSeed::Fixed(18738),
            failure_persistence: None,
            ..Default::default()
        })]
        /// The one-step search finds exactly what walking every slot finds.
        #[test]
        fn forced_collision_agrees_with_walking_every_slot(
            ma in 0u8..60, ha in "(\\*|[0-9]|1[0-9]|2[0-3]|\\*/[2-8])", da in "(\\*|sun|mon|1-5)",
            mb in 0u8..60, hb in "(\\*|[0-9]|1[0-9]|2[0-3]|\\*/[2-8])", db in "(\\*|sat|mon|2-4)",
            wa in 1u64..300, wb in 1u64..300, apart in 1u64..600,
        ) {
            let a = cron(&format!("{ma} {ha} * * {da}"), Some(wa * 60));
            let b = cron(&format!("{mb} {hb} * * {db}"), Some(wb * 60));
            let (apart, from) = (Duration::from_secs(apart * 60), datetime!(2026-11-20 00:00 UTC));
            proptest::prop_assert_eq!(forced_collision(&a, &b, apart, from), forced_collision_by_walking(&a, &b, apart, from));
        }
    }
}
