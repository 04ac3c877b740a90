//! Property test: what `check` accepts, the scheduler can run.
//!
//! Configs are generated from the keys that carry durations, counts and
//! Vault paths, mixing sensible values, values at the edges of their ranges
//! and hostile ones (`"10000y"`, `"0s"`, `"1ns"`, `u32::MAX` retries, `..`
//! state prefixes, addresses that are no URL). Each config is parsed as
//! `rotator check` parses it. A refused config must locate every error; an
//! accepted one must keep every value in its documented range, and each of
//! its jobs is driven through all of the schedule's arithmetic from the
//! extremes of the calendar (a state record in Vault may say year 9999),
//! through retries, failed cycles and successes, ending in a state record
//! that can still be written. Any panic fails the test.
//!
//! 10,000 cases with a fixed seed (reproducible in CI) and 10,000 with a
//! random one (new corners each run; a failure prints its seed). A third
//! run takes 120 accepted configs further: each job is loaded with its
//! built-in plugin, added to a real [`Scheduler`] and rotated once on an
//! in-process dev server over HTTP, so the scheduler's own bookkeeping (its
//! `after_run`, its deadline queue) meets the same values.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngSeed, TestRunner};
use rand::SeedableRng;
use rand::rngs::StdRng;
use time::OffsetDateTime;

use rotator_core::config::units::{self, Bounds};
use rotator_core::config::{Config, parse};
use rotator_core::schedule::cycle::{RunOutcome, after_run};
use rotator_core::schedule::spec::{Cadence, Jitter, Schedule, describe};
use rotator_core::state::JobState;

/// A duration as an operator (or an attacker) might write it.
fn duration_text() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec!["ms", "s", "m", "h", "d", "w", "y"]);
    prop_oneof![
        4 => (0u64..200, unit.clone()).prop_map(|(n, u)| format!("{n}{u}")),
        2 => (0u64..=u64::MAX, unit).prop_map(|(n, u)| format!("{n}{u}")),
        3 => prop::sample::select(vec![
            "0s", "1ns", "99ms", "100ms", "1s", "59s", "1m", "10m", "1h", "24h", "366d", "367d",
            "3650d", "3651d", "10000y", "584942417355y", "18446744073709551615s", "1h 30m", "-1s",
            "1.5h", "", " ", "soon", "1 fortnight",
        ])
        .prop_map(str::to_owned),
    ]
}

fn cron_text() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec!["*", "0", "5", "*/5", "1-3", "59", "60", "31", "29", "2", "sun", "x"]);
    prop_oneof![
        3 => prop::sample::select(vec![
            "0 3 * * sun", "*/5 * * * *", "0 0 29 2 *", "0 0 31 * *", "59 23 31 12 *", "0 0 30 2 *", "* * * * *",
        ])
        .prop_map(str::to_owned),
        2 => prop::collection::vec(field, 5).prop_map(|f| f.join(" ")),
    ]
}

fn maybe<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.5, s)
}

/// One `[[jobs]]` table with a generated schedule.
fn job_text(index: usize) -> impl Strategy<Value = String> {
    let count = prop_oneof![Just(0u64), Just(1), 2u64..200, Just(u64::from(u32::MAX)), Just(u64::MAX)];
    (
        prop_oneof![3 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        duration_text(),
        cron_text(),
        maybe(duration_text()),
        maybe(prop_oneof![any::<bool>().prop_map(|b| b.to_string()), duration_text().prop_map(|d| format!("\"{d}\""))]),
        maybe((maybe(count.clone()), maybe(duration_text()), maybe(count))),
        maybe(duration_text()),
    )
        .prop_map(move |(cadence, interval, cron, window, jitter, retry, apart)| {
            let mut t = format!(
                "[[jobs]]\nid = \"job-{index}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"props/{index}\" }}\nsettings = {{ field = \"password\" }}\n"
            );
            if cadence != 1 {
                t += &format!("interval = \"{interval}\"\n");
            }
            if cadence != 0 {
                t += &format!("cron = \"{cron}\"\n");
            }
            if let Some(w) = window {
                t += &format!("window = \"{w}\"\n");
            }
            if let Some(j) = jitter {
                t += &format!("jitter = {j}\n");
            }
            if let Some((attempts, backoff, needs)) = retry {
                let mut keys = Vec::new();
                keys.extend(attempts.map(|n| format!("attempts = {n}")));
                keys.extend(backoff.map(|b| format!("backoff = \"{b}\"")));
                keys.extend(needs.map(|n| format!("needs_attention_after = {n}")));
                t += &format!("retry = {{ {} }}\n", keys.join(", "));
            }
            if let Some(d) = apart
                && index > 0
            {
                t += &format!("not_within = {{ job = \"job-0\", duration = \"{d}\" }}\n");
            }
            t
        })
}

/// A whole file: `[vault]`, `[daemon]` and one to three jobs.
fn config_text() -> impl Strategy<Value = String> {
    let path = prop::sample::select(vec!["secret", "kv/team", "", "/", "..", "../..", "a//b", "rotator/./state", "ok"]);
    let address = prop::sample::select(vec![
        "http://127.0.0.1:8200",
        "https://vault.example/proxy",
        "garbage",
        "vault:8200",
        "ftp://x",
        "http://u:p@x",
        "http://x/?q",
        "",
    ]);
    (
        maybe(address),
        maybe(duration_text()),
        maybe(duration_text()),
        maybe((path.clone(), path)),
        maybe(prop_oneof![Just(0u64), 1u64..2000, Just(u64::MAX)]),
        prop::collection::vec(0..3usize, 1..=3)
            .prop_flat_map(|v| (0..v.len()).map(job_text).collect::<Vec<_>>().prop_map(|jobs| jobs.concat())),
    )
        .prop_map(|(address, timeout, grace, state, concurrency, jobs)| {
            let mut t = String::from("[vault]\n");
            t.extend(address.map(|a| format!("address = \"{a}\"\n")));
            t.extend(timeout.map(|d| format!("timeout = \"{d}\"\n")));
            t += "[daemon]\n";
            t.extend(grace.map(|d| format!("shutdown_grace = \"{d}\"\n")));
            t.extend(concurrency.map(|n| format!("max_concurrent_rotations = {n}\n")));
            t.extend(state.map(|(m, p)| format!("state = {{ mount = \"{m}\", prefix = \"{p}\" }}\n")));
            t + &jobs
        })
}

fn within(b: &Bounds, d: Duration) -> Result<(), TestCaseError> {
    prop_assert!(b.check(d).is_ok(), "{} = {d:?} was accepted outside its range", b.key);
    Ok(())
}

/// Every accepted value lies in its documented range.
fn in_ranges(config: &Config) -> Result<(), TestCaseError> {
    within(&units::VAULT_TIMEOUT, config.vault.as_ref().expect("records in Vault by default").timeout)?;
    within(&units::SHUTDOWN_GRACE, config.daemon.shutdown_grace)?;
    for job in &config.jobs {
        let s = &job.schedule;
        if let Cadence::Interval(every) = s.cadence {
            within(&units::INTERVAL, every)?;
        }
        if let Some(w) = s.window {
            within(&units::WINDOW, w)?;
        }
        if let Jitter::Up(j) = s.jitter {
            within(&units::JITTER, j)?;
            prop_assert!(s.window.is_none_or(|w| j <= w), "jitter {j:?} longer than the window");
        }
        within(&units::BACKOFF, s.retry.backoff)?;
        for nw in &s.not_within {
            within(&units::NOT_WITHIN, nw.duration)?;
        }
    }
    Ok(())
}

/// Drive one schedule through every rule from the calendar's extremes.
fn exercise(schedule: &Schedule, rng: &mut StdRng) -> Result<(), TestCaseError> {
    let real_now = OffsetDateTime::now_utc();
    let far = [OffsetDateTime::UNIX_EPOCH, real_now, time::PrimitiveDateTime::MAX.assume_utc()];
    // RFC 3339, as state records are written, spans years 0000 to 9999.
    let min = time::macros::datetime!(0000-01-01 00:00 UTC);
    for now in [real_now, far[2], min] {
        for last in [None, Some(far[0]), Some(far[1]), Some(far[2]), Some(min)] {
            let slot = schedule.next_slot(last, now);
            let start = schedule.start_for(slot, rng);
            prop_assert!(start >= slot, "a start before its slot");
            if let Some(end) = schedule.window_end(slot) {
                prop_assert!(start <= end, "a start after its window");
            }
            let _ = schedule.window_open(slot, now);
            let mut state =
                JobState { last_rotation: last, slot: Some(slot), next_due: Some(start), ..JobState::default() };
            let tries = schedule.retry.attempts.saturating_mul(schedule.retry.needs_attention_after).min(50);
            for i in 0..tries {
                after_run(schedule, &mut state, RunOutcome::Failed { retryable: i % 7 != 6 }, now, false, rng);
            }
            after_run(schedule, &mut state, RunOutcome::Failed { retryable: false }, now, true, rng);
            after_run(schedule, &mut state, RunOutcome::Rotated, now, false, rng);
            // Counters read back from Vault at their ceiling.
            state.retries = u32::MAX;
            state.failed_cycles = u32::MAX;
            after_run(schedule, &mut state, RunOutcome::Failed { retryable: true }, now, false, rng);
            // The record must still be writable to Vault.
            prop_assert!(serde_json::to_string(&state).is_ok(), "the state record cannot be written");
        }
    }
    let _ = describe(schedule);
    Ok(())
}

fn one_case(text: String) -> Result<(), TestCaseError> {
    match parse("props.toml", &text, Path::new("/nonexistent")) {
        Err(errors) => {
            prop_assert!(!errors.errors.is_empty());
            for e in &errors.errors {
                prop_assert!(e.line >= 1 && e.column >= 1, "unlocated error `{}` for\n{text}", e.message);
            }
        }
        Ok(config) => {
            in_ranges(&config)?;
            let mut rng = StdRng::seed_from_u64(text.len() as u64);
            for job in &config.jobs {
                exercise(&job.schedule, &mut rng)?;
            }
        }
    }
    Ok(())
}

fn runner(cases: u32, seed: RngSeed) -> TestRunner {
    TestRunner::new(RunnerConfig { cases, rng_seed: seed, failure_persistence: None, ..RunnerConfig::default() })
}

fn run(cases: u32, seed: RngSeed) {
    if let Err(e) = runner(cases, seed).run(&config_text(), one_case) {
        panic!("{e}");
    }
}

#[test]
fn accepted_configs_schedule_without_panics_fixed_seed() {
    run(10_000, RngSeed::Fixed(0x5eed_0009));
}

#[test]
fn accepted_configs_schedule_without_panics_random_seed() {
    run(10_000, RngSeed::Random);
}

/// The shapes the issue reported, each refused with its location.
#[test]
fn the_reported_configs_are_refused_where_they_are_wrong() {
    let cases = [
        ("[[jobs]]\nid = \"a\"\nplugin = \"kv-random\"\ninterval = \"10000y\"\n", (4, 12), "interval must be between"),
        ("[daemon]\nstate = { mount = \"\", prefix = \"rotator\" }\n", (2, 19), "path is empty"),
        ("[daemon]\nstate = { mount = \"secret\", prefix = \"../..\" }\n", (2, 38), "`..` segment"),
        ("[vault]\ntimeout = \"0s\"\n", (2, 11), "vault.timeout must be between 100ms and 10m"),
        ("[vault]\naddress = \"garbage\"\n", (2, 11), "is not a URL"),
        (
            "[[jobs]]\nid = \"a\"\nplugin = \"kv-random\"\ncron = \"0 3 * * *\"\nwindow = \"1h\"\njitter = \"2h\"\n",
            (6, 10),
            "jitter `2h` is longer than the window (1h)",
        ),
    ];
    for (text, (line, column), why) in cases {
        let errors = parse("t.toml", text, Path::new("/nonexistent")).unwrap_err().errors;
        let e = errors.iter().find(|e| e.message.contains(why)).unwrap_or_else(|| panic!("{text}: {errors:?}"));
        assert_eq!((e.line, e.column), (line, column), "{text}: {}", e.message);
    }
}

/// Accepted configs, one rotation per job through a real scheduler.
#[test]
fn accepted_configs_rotate_once_on_the_dev_server() {
    use rotator_core::state::StateStore;
    use rotator_daemon::scheduler::{Scheduler, SchedulerError};
    use rotator_daemon::setup::{self, VaultOverride};
    use rotator_devserver::{DevServer, DevServerOptions};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = DevServerOptions { addr: "127.0.0.1:0".parse().unwrap(), root_token: "root".into(), faults: None };
    let server = rt.block_on(DevServer::start(options)).unwrap();
    let plugins = std::sync::OnceLock::new();
    let rotated = std::cell::Cell::new(0);
    let accepted = (config_text(), any::<u64>())
        .prop_filter("accepted by check", |(text, _)| parse("props.toml", text, Path::new("/")).is_ok());
    // Most generated configs are refused; only accepted ones are cases here.
    let config = RunnerConfig {
        cases: 120,
        rng_seed: RngSeed::Fixed(0x5eed_0e2e),
        max_global_rejects: 1_000_000,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let outcome = TestRunner::new(config).run(&accepted, |(text, _)| {
        let config = parse("props.toml", &text, Path::new("/")).unwrap();
        let over = VaultOverride { address: Some(server.url()), token: Some("root".to_owned().into()) };
        let vault = setup::vault_client(&config, over).unwrap().expect("an address is given");
        let plugins = plugins.get_or_init(|| setup::runtime(&config).unwrap());
        let jobs = setup::load_jobs(&config, plugins).unwrap();
        rt.block_on(async {
            // The generated state mount may not exist; the schedule is what is tested.
            let scheduler = Scheduler::new(StateStore::new(vault, "secret", "rotator/state"), 4, Vec::new());
            for job in jobs {
                let (id, paired) = (job.config.id.clone(), !job.config.schedule.not_within.is_empty());
                scheduler.add(job).await.unwrap();
                match scheduler.rotate_now(&id, "proptest").await {
                    Ok(report) => {
                        prop_assert!(report.new_version.is_some());
                        rotated.set(rotated.get() + 1);
                    }
                    // A paired job may have to wait for its partner.
                    Err(SchedulerError::Blocked { .. }) if paired => {}
                    Err(e) => prop_assert!(false, "{id}: {e}\n{text}"),
                }
                let view = scheduler.registry().view(&id).unwrap();
                prop_assert!(view.next_due.is_some() || view.needs_attention, "{id} has no next run");
            }
            Ok(())
        })
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    assert!(rotated.get() >= 120, "only {} rotations ran", rotated.get());
}
