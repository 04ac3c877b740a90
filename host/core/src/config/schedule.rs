//! A job's schedule keys as written (`interval` or `cron`, `window`,
//! `jitter`, `not_within`, `retry`) → [`Schedule`], with located errors; and
//! the checks across jobs (`not_within` names a real job; paired cron jobs
//! whose windows force them together are refused).
//!
//! ```toml
//! cron = "0 3 * * sun"          # or: interval = "24h"
//! window = "2h"                 # cron only: may start up to 2 h after the slot
//! jitter = true                 # random start inside the window (or "10m")
//! not_within = { job = "orders-db-root", duration = "1h" }
//! retry = { attempts = 3, backoff = "30s", needs_attention_after = 3 }
//! ```

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::units::{self, Bounds};
use super::{Collector, JobConfig};
use crate::schedule::spec::{Cadence, Jitter, NotWithin, RetryPolicy, Schedule, forced_collision};

/// The schedule keys of a `[[jobs]]` table, as deserialized there (serde
/// cannot flatten into a struct that denies unknown fields).
#[derive(Default)]
pub(super) struct RawSchedule {
    pub interval: Option<Spanned<String>>,
    pub cron: Option<Spanned<String>>,
    pub window: Option<Spanned<String>>,
    pub jitter: Option<Spanned<RawJitter>>,
    pub not_within: Option<Spanned<OneOrMany<RawNotWithin>>>,
    pub retry: Option<Spanned<RawRetry>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawJitter {
    Flag(bool),
    Up(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotWithin {
    job: String,
    duration: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    backoff: Option<String>,
    #[serde(default)]
    needs_attention_after: Option<u32>,
}

/// Parse a duration key within its documented range, reporting at `span`.
fn duration(c: &mut Collector, text: &str, span: Range<usize>, bounds: &Bounds) -> Option<Duration> {
    bounds.parse(text).map_err(|why| c.error(span, why.to_string())).ok()
}

/// Validate the keys; `job_span` locates errors about missing keys.
pub(super) fn schedule(c: &mut Collector, raw: RawSchedule, job_span: Range<usize>) -> Option<Schedule> {
    let cadence = match (&raw.interval, &raw.cron) {
        (Some(_), Some(cron)) => {
            c.error(cron.span(), "set either `interval` or `cron`, not both");
            None
        }
        (None, None) => {
            c.error(job_span, "job needs a schedule: `interval = \"24h\"` or `cron = \"0 3 * * *\"`");
            None
        }
        (Some(i), None) => duration(c, i.get_ref(), i.span(), &units::INTERVAL).map(Cadence::Interval),
        (None, Some(cron)) => match cron.get_ref().parse() {
            Ok(expr) => Some(Cadence::Cron(expr)),
            Err(why) => {
                c.error(cron.span(), format!("invalid cron `{}`: {why}", cron.get_ref()));
                None
            }
        },
    };
    // Keep checking the other keys, so every mistake is reported at once.
    let is_interval = matches!(cadence, Some(Cadence::Interval(_))) || raw.cron.is_none();
    let mut ok = true;
    let window = match &raw.window {
        None => None,
        Some(_) if is_interval => {
            c.error(raw.window.as_ref().map(Spanned::span).unwrap_or_default(), "`window` needs a `cron` schedule");
            ok = false;
            None
        }
        Some(w) => {
            let d = duration(c, w.get_ref(), w.span(), &units::WINDOW);
            ok &= d.is_some();
            d
        }
    };
    let jitter = match raw.jitter.as_ref().map(|j| (j.get_ref(), j.span())) {
        None | Some((RawJitter::Flag(false), _)) => Jitter::None,
        Some((RawJitter::Flag(true), span)) if window.is_none() => {
            c.error(span, "`jitter = true` spreads starts inside the window: set `window`, or give a duration");
            ok = false;
            Jitter::None
        }
        Some((RawJitter::Flag(true), _)) => Jitter::InWindow,
        Some((RawJitter::Up(text), span)) => match duration(c, text, span.clone(), &units::JITTER) {
            Some(d) => match jitter_room(cadence.as_ref(), window) {
                // A start after the window's end (cron) or after the next
                // slot (interval) would be a run outside its schedule.
                Some((room, what)) if d > room => {
                    c.error(span, format!("jitter `{text}` is longer than the {what} ({})", units::show(room)));
                    ok = false;
                    Jitter::None
                }
                _ => Jitter::Up(d),
            },
            None => {
                ok = false;
                Jitter::None
            }
        },
    };
    let mut not_within = Vec::new();
    if let Some(raw_nw) = &raw.not_within {
        let items = match raw_nw.get_ref() {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many.as_slice(),
        };
        for item in items {
            match duration(c, &item.duration, raw_nw.span(), &units::NOT_WITHIN) {
                Some(d) => not_within.push(NotWithin { job: item.job.clone(), duration: d }),
                None => ok = false,
            }
        }
    }
    let retry = match &raw.retry {
        None => RetryPolicy::default(),
        Some(r) => {
            let (span, r) = (r.span(), r.get_ref());
            let mut policy = RetryPolicy::default();
            if let Some(a) = r.attempts {
                policy.attempts = a;
            }
            if let Some(n) = r.needs_attention_after {
                policy.needs_attention_after = n;
            }
            if !(1..=MAX_ATTEMPTS).contains(&policy.attempts)
                || !(1..=MAX_NEEDS_ATTENTION).contains(&policy.needs_attention_after)
            {
                c.error(
                    span.clone(),
                    format!(
                        "retry.attempts must be between 1 and {MAX_ATTEMPTS}, retry.needs_attention_after between 1 \
                         and {MAX_NEEDS_ATTENTION}"
                    ),
                );
                ok = false;
            }
            if let Some(b) = &r.backoff {
                match duration(c, b, span, &units::BACKOFF) {
                    Some(d) => policy.backoff = d,
                    None => ok = false,
                }
            }
            policy
        }
    };
    let cadence = cadence?;
    ok.then_some(Schedule { cadence, window, jitter, not_within, retry, phase: None })
}

/// Tries per slot: more would retry for days at the capped backoff.
const MAX_ATTEMPTS: u32 = 100;
/// Failed cycles before a human is asked.
const MAX_NEEDS_ATTENTION: u32 = 1000;

/// How late a `jitter = "…"` start may fall, and what bounds it: the window
/// of a cron job that has one, else an interval job's interval. A cron job
/// without a window may start any time before its next slot, which the
/// scheduler handles as a catch-up, so only the key's own range applies.
fn jitter_room(cadence: Option<&Cadence>, window: Option<Duration>) -> Option<(Duration, &'static str)> {
    match (cadence, window) {
        (_, Some(w)) => Some((w, "window")),
        (Some(Cadence::Interval(every)), None) => Some((*every, "interval")),
        _ => None,
    }
}

/// Checks that need every job: `not_within` names another existing job, and
/// paired cron jobs are not forced to collide by their windows.
pub(super) fn check_pairs(c: &mut Collector, jobs: &[JobConfig]) {
    let now = time::OffsetDateTime::now_utc();
    for job in jobs {
        for nw in &job.schedule.not_within {
            let span = job.spans.not_within.clone();
            let Some(other) = jobs.iter().find(|j| j.id == nw.job) else {
                c.error(span, format!("not_within names job `{}`, which is not in this file", nw.job));
                continue;
            };
            if other.id == job.id {
                c.error(span, "not_within names the job itself");
                continue;
            }
            if let Some(at) = forced_collision(&job.schedule, &other.schedule, nw.duration, now) {
                c.error(
                    span,
                    format!(
                        "jobs `{}` and `{}` must start within {} of each other ({} {:02}:{:02} UTC): their windows \
                         leave no room to keep them apart (widen a window or move a schedule)",
                        job.id,
                        other.id,
                        humantime::format_duration(nw.duration),
                        at.weekday(),
                        at.hour(),
                        at.minute(),
                    ),
                );
            }
        }
    }
}
