//! A job's cycle as recorded in its state: when it runs next, and how a run's
//! outcome moves that (retries within a slot, failed cycles, needs-attention).
//!
//! Pure functions over the state record and wall-clock times, so the rules
//! that make a restart neither repeat nor skip a rotation are tested without
//! Vault or a clock. The scheduler persists what they decide.

use rand::Rng;
use time::OffsetDateTime;

use super::spec::{Schedule, later};
use crate::state::JobState;

/// When a job should run next, as decided from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// At this time (may be now).
    At(OffsetDateTime),
    /// Not automatically: the job needs attention.
    Paused,
}

/// Where the record's schedule stands at `now`, e.g. after a restart.
/// `first_seen` stands in for the last rotation of a job rotator has never
/// rotated (the secret's last update); `None` makes it due now. Returns the
/// decision and whether the record changed (and should be saved).
pub fn next_due(
    schedule: &Schedule,
    state: &mut JobState,
    now: OffsetDateTime,
    first_seen: Option<OffsetDateTime>,
    rng: &mut impl Rng,
) -> (Due, bool) {
    // An unfinished rotation is resumed at once, whatever else the record says.
    if state.in_progress.is_some() {
        return (Due::At(now), false);
    }
    if state.needs_attention {
        return (Due::Paused, false);
    }
    if let Some(due) = state.next_due {
        if due > now {
            return (Due::At(due), false);
        }
        // Missed while down: caught up once, now, if the slot's window is
        // still open; otherwise the slot is skipped.
        let slot = state.slot.unwrap_or(due);
        if schedule.window_open(slot, now) {
            return (Due::At(now), false);
        }
        tracing::warn!(slot = %slot, "a slot's window passed while rotator was not running; waiting for the next slot");
    }
    let last = state.last_rotation.or(first_seen);
    let slot = schedule.next_slot(last, now);
    let start = schedule.start_for(slot, rng);
    state.slot = Some(slot);
    state.next_due = Some(start);
    (Due::At(start.max(now)), true)
}

/// How a run ended, as the schedule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Rotated,
    /// Failed; `retryable` if trying again soon may help.
    Failed {
        retryable: bool,
    },
}

/// Move the record on after a run that ended at `now`. A manual run
/// (`rotate now`) that fails leaves the schedule as it was; one that
/// succeeds clears needs-attention like any success.
pub fn after_run(
    schedule: &Schedule,
    state: &mut JobState,
    outcome: RunOutcome,
    now: OffsetDateTime,
    manual: bool,
    rng: &mut impl Rng,
) {
    let retryable = match outcome {
        RunOutcome::Rotated => {
            state.retries = 0;
            state.failed_cycles = 0;
            state.needs_attention = false;
            schedule_fresh(schedule, state, Some(state.last_rotation.unwrap_or(now)), now, rng);
            return;
        }
        RunOutcome::Failed { .. } if manual => return,
        RunOutcome::Failed { retryable } => retryable,
    };
    state.retries = state.retries.saturating_add(1);
    let retry_at = later(now, schedule.retry.delay_after(state.retries));
    let slot = state.slot.unwrap_or(now);
    if retryable && state.retries < schedule.retry.attempts && schedule.window_open(slot, retry_at) {
        state.next_due = Some(retry_at);
        return;
    }
    // The cycle failed: wait for the next slot, or for a human.
    state.retries = 0;
    state.failed_cycles = state.failed_cycles.saturating_add(1);
    if state.failed_cycles >= schedule.retry.needs_attention_after {
        state.needs_attention = true;
        state.slot = None;
        state.next_due = None;
    } else {
        schedule_fresh(schedule, state, Some(now), now, rng);
    }
}

fn schedule_fresh(
    schedule: &Schedule,
    state: &mut JobState,
    last: Option<OffsetDateTime>,
    now: OffsetDateTime,
    rng: &mut impl Rng,
) {
    let slot = schedule.next_slot(last, now);
    state.slot = Some(slot);
    state.next_due = Some(schedule.start_for(slot, rng));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use time::macros::datetime;

    use super::*;
    use crate::schedule::spec::{Cadence, RetryPolicy};

    fn rng() -> StdRng {
        StdRng::seed_from_u64(1)
    }

    fn hourly() -> Schedule {
        Schedule::every(Duration::from_secs(3600))
    }

    fn daily_3am(window: u64) -> Schedule {
        Schedule {
            cadence: Cadence::Cron("0 3 * * *".parse().unwrap()),
            window: Some(Duration::from_secs(window)),
            ..hourly()
        }
    }

    #[test]
    fn a_restart_before_the_due_time_keeps_it_and_after_catches_up_once() {
        let s = hourly();
        let mut state = JobState::default();
        let t0 = datetime!(2026-11-22 10:00 UTC);
        state.last_rotation = Some(t0);
        after_run(&s, &mut state, RunOutcome::Rotated, t0, false, &mut rng());
        assert_eq!(state.next_due, Some(datetime!(2026-11-22 11:00 UTC)));
        // Restart at 10:30: same due time, nothing to save.
        let (due, changed) = next_due(&s, &mut state, datetime!(2026-11-22 10:30 UTC), None, &mut rng());
        assert_eq!((due, changed), (Due::At(datetime!(2026-11-22 11:00 UTC)), false));
        // Down for five hours: due once, now.
        let late = datetime!(2026-11-22 16:00 UTC);
        assert_eq!(next_due(&s, &mut state, late, None, &mut rng()).0, Due::At(late));
        // After that run, the next one is an hour later, not four more now.
        state.last_rotation = Some(late);
        after_run(&s, &mut state, RunOutcome::Rotated, late, false, &mut rng());
        assert_eq!(state.next_due, Some(datetime!(2026-11-22 17:00 UTC)));
    }

    #[test]
    fn a_missed_window_waits_for_the_next_slot() {
        let s = daily_3am(3600);
        let mut state = JobState {
            slot: Some(datetime!(2026-11-22 03:00 UTC)),
            next_due: Some(datetime!(2026-11-22 03:00 UTC)),
            ..JobState::default()
        };
        // Back at 03:30: still inside the window.
        let inside = datetime!(2026-11-22 03:30 UTC);
        assert_eq!(next_due(&s, &mut state.clone(), inside, None, &mut rng()).0, Due::At(inside));
        // Back at 05:00: the window closed at 04:00.
        let (due, changed) = next_due(&s, &mut state, datetime!(2026-11-22 05:00 UTC), None, &mut rng());
        assert_eq!(due, Due::At(datetime!(2026-11-23 03:00 UTC)));
        assert!(changed);
    }

    #[test]
    fn a_new_job_is_due_now_or_one_interval_after_its_secret_changed() {
        let s = hourly();
        let now = datetime!(2026-11-22 10:00 UTC);
        assert_eq!(next_due(&s, &mut JobState::default(), now, None, &mut rng()).0, Due::At(now));
        let seen = Some(datetime!(2026-11-22 09:45 UTC));
        let due = next_due(&s, &mut JobState::default(), now, seen, &mut rng()).0;
        assert_eq!(due, Due::At(datetime!(2026-11-22 10:45 UTC)));
    }

    #[test]
    fn retries_back_off_then_the_cycle_fails_then_the_job_needs_attention() {
        let mut s = hourly();
        s.retry = RetryPolicy { attempts: 2, backoff: Duration::from_secs(10), needs_attention_after: 2 };
        let mut state = JobState::default();
        let t = datetime!(2026-11-22 10:00 UTC);
        let failed = RunOutcome::Failed { retryable: true };
        after_run(&s, &mut state, failed, t, false, &mut rng());
        assert_eq!((state.retries, state.next_due), (1, Some(datetime!(2026-11-22 10:00:10 UTC))));
        after_run(&s, &mut state, failed, t, false, &mut rng());
        assert_eq!((state.retries, state.failed_cycles), (0, 1));
        assert_eq!(state.next_due, Some(datetime!(2026-11-22 11:00 UTC)));
        // A permanent failure ends the cycle without retries.
        after_run(&s, &mut state, RunOutcome::Failed { retryable: false }, t, false, &mut rng());
        assert!(state.needs_attention);
        assert_eq!(next_due(&s, &mut state, t, None, &mut rng()).0, Due::Paused);
        // A manual failure changes nothing; a manual success clears it.
        after_run(&s, &mut state, failed, t, true, &mut rng());
        assert!(state.needs_attention);
        state.last_rotation = Some(t);
        after_run(&s, &mut state, RunOutcome::Rotated, t, true, &mut rng());
        assert!(!state.needs_attention);
        assert_eq!(state.failed_cycles, 0);
    }

    #[test]
    fn a_retry_past_the_window_ends_the_cycle() {
        let mut s = daily_3am(60);
        s.retry.backoff = Duration::from_secs(120);
        let mut state = JobState { slot: Some(datetime!(2026-11-22 03:00 UTC)), ..JobState::default() };
        after_run(
            &s,
            &mut state,
            RunOutcome::Failed { retryable: true },
            datetime!(2026-11-22 03:00 UTC),
            false,
            &mut rng(),
        );
        assert_eq!(state.failed_cycles, 1);
        assert_eq!(state.slot, Some(datetime!(2026-11-23 03:00 UTC)));
    }

    #[test]
    fn an_unfinished_rotation_is_resumed_at_once_even_when_paused() {
        let mut state = JobState { needs_attention: true, ..JobState::default() };
        state.in_progress = crate::state::JobState::from_secret(&crate::secret::SecretJson::new(
            r#"{"pending":{"p":"x"},"in_progress":{"id":"r","stage":"set","started":"2026-11-22T10:00:00Z","attempt":1,"base_version":null,"actor":"cli"}}"#.into(),
        ))
        .unwrap()
        .in_progress;
        let now = datetime!(2026-11-22 12:00 UTC);
        assert_eq!(next_due(&hourly(), &mut state, now, None, &mut rng()).0, Due::At(now));
    }
}
