//! Everything a plugin returns is bounded: the `fixture-flood` plugin sends
//! 50 MB errors, log lines and plan summaries, a 50 MB secret and 100,000
//! host calls, and the host shows a capped, redacted part of each (marked
//! `…[truncated N bytes]`) or refuses it with a typed error. Secrets placed
//! across a cut never show in part. (A whole `rotator dev` running the
//! fixture, and `rotator plugin test` of it, keep their log, API answers and
//! output small: host/rotator/tests/cli.rs.)

use std::sync::Arc;

use rotator_core::plugin::{
    CurrentSecret, Failure, Grants, Operation, OutputLimits, Plugin, RunConfig, RunLimits, Runtime, RuntimeOptions,
    StepContext, StepError, VaultBridge, VaultGrant,
};
use rotator_core::secret::SecretJson;
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_test_artifacts::build_artifact;
use rotator_tests::{ROOT, dev_server, logs};
use secrecy::SecretString;
use serde_json::json;
use tokio::runtime::Handle;

/// What the fixture floods with.
const HUGE: usize = 50_000_000;
/// The room a `…[truncated N bytes]` marker takes.
const MARKER: usize = 40;

fn flood() -> Plugin {
    let rt = Runtime::new(RuntimeOptions { max_concurrent_runs: 4, ..Default::default() }).expect("runtime");
    rt.load_file(&build_artifact("fixture_flood"), None).expect("fixture-flood")
}

fn ctx(job: &str, mode: &str, current: Option<&str>) -> StepContext {
    StepContext {
        job_id: job.into(),
        rotation_id: format!("{job}-r1"),
        settings: json!({ "mode": mode }),
        current: current
            .map(|pw| CurrentSecret { data: SecretJson::new(json!({ "password": pw }).to_string()), version: Some(1) }),
        attempt: 1,
    }
}

fn config(limits: RunLimits) -> RunConfig {
    RunConfig { limits, grants: Arc::new(Grants::default()), vault: None, ..RunConfig::default() }
}

/// `secret` shows nowhere in `text`, whole or as the start of a piece cut
/// off by a `…[truncated` marker.
fn assert_not_shown(secret: &str, text: &str) {
    assert!(!text.contains(secret), "the secret shows");
    let pieces: Vec<&str> = text.split("…[truncated ").collect();
    for before_cut in &pieces[..pieces.len() - 1] {
        for len in 1..secret.len() {
            assert!(!before_cut.ends_with(&secret[..len]), "the cut shows {:?} of the secret", &secret[..len]);
        }
    }
}

/// The number in `…[truncated N bytes]` at the end of `text`.
fn truncated(text: &str) -> usize {
    let tail = text.rsplit_once("…[truncated ").unwrap_or_else(|| panic!("no marker in {text:?}")).1;
    tail.strip_suffix(" bytes]").unwrap().parse().unwrap()
}

#[test]
fn a_50_mb_error_is_redacted_then_cut_and_names_job_plugin_and_version() {
    let p = flood();
    // The current secret sits across the 4 KiB cut of the 50 MB message.
    let password = "current-Password-0123456789-abcdef";
    let mut run = p.start("flood-error", config(RunLimits::default())).unwrap();
    let err = run.create(&ctx("flood-error", "error", Some(password))).unwrap_err();
    let Failure::Permanent(message) = &err.failure else { panic!("{err}") };
    assert!(message.len() <= OutputLimits::DEFAULT.error_message + MARKER, "{} bytes", message.len());
    let kept = message.len() - message.rsplit_once('…').unwrap().1.len() - '…'.len_utf8();
    assert!(truncated(message) > HUGE - 8192 && kept <= 4096, "{kept} kept, {} cut", truncated(message));
    assert_not_shown(password, &err.to_string());
    let shown = err.to_string();
    assert!(shown.starts_with("job `flood-error`: plugin fixture-flood@0.0.1: create: permanent failure: xxx"));

    // A job's own cap applies in the same way.
    let limits =
        RunLimits { output: OutputLimits { error_message: 300, ..OutputLimits::DEFAULT }, ..Default::default() };
    let mut run = p.start("flood-error-small", config(limits)).unwrap();
    let err = run.create(&ctx("flood-error-small", "error", Some(password))).unwrap_err();
    assert!(err.to_string().len() < 300 + 200, "{err}");
    assert_eq!(truncated(&err.to_string()), HUGE - 300);
}

#[test]
fn huge_and_countless_log_lines_are_capped_counted_and_redacted() {
    logs::capture();
    let p = flood();
    let job = "flood-logs";
    let mut run = p.start(job, config(RunLimits::default())).unwrap();
    let secret = run.create(&ctx(job, "logs", None)).unwrap();
    let password = secret.fields()["password"].as_str().unwrap().to_owned();
    let lines = logs::lines_with(&[&format!("job=\"{job}\"")]);
    let lines: Vec<String> = if lines.is_empty() { logs::lines_with(&[&format!("job={job} ")]) } else { lines };
    // 100 lines kept, one closing line for the 99,901 dropped.
    assert_eq!(lines.len(), OutputLimits::DEFAULT.log_lines + 1, "{:?}", &lines[..3.min(lines.len())]);
    assert!(lines.iter().all(|l| l.len() <= OutputLimits::DEFAULT.log_line + 200), "a line over its cap");
    let huge = &lines[0];
    assert!(huge.contains("…[truncated "), "{}", &huge[..200]);
    assert!(lines[1].contains("the new password is [REDACTED]"), "{}", lines[1]);
    let closing = lines.last().unwrap();
    assert!(closing.contains("99901 further log line(s)") && closing.contains("keeps 100 per step"), "{closing}");
    let all = lines.concat();
    assert!(all.len() < 512 << 10, "{} bytes of log for one step", all.len());
    assert_not_shown(&password, &all);
}

#[test]
fn a_huge_plan_summary_is_cut_and_a_plan_with_too_many_actions_is_refused() {
    let p = flood();
    let mut run = p.start("flood-plan", config(RunLimits::default())).unwrap();
    let plan = run.plan(&ctx("flood-plan", "plan", None)).unwrap();
    assert_eq!(plan.len(), 1);
    assert!(plan[0].summary.len() <= OutputLimits::DEFAULT.plan_summary + MARKER);
    assert_eq!(truncated(&plan[0].summary), HUGE - OutputLimits::DEFAULT.plan_summary);

    let mut c = ctx("flood-plan-many", "plan", None);
    c.settings = json!({ "mode": "plan", "actions": 100_000 });
    let err = run.plan(&c).unwrap_err();
    assert_eq!(err.failure, Failure::BadOutput("plan listed 100000 actions; at most 64 are allowed".into()));
}

#[test]
fn a_huge_secret_is_refused_unseen_and_so_are_its_log_lines() {
    logs::capture();
    let p = flood();
    let job = "flood-secret";
    let mut run = p.start(job, config(RunLimits::default())).unwrap();
    let err = run.create(&ctx(job, "secret", None)).unwrap_err();
    let limit = OutputLimits::DEFAULT.secret;
    assert_eq!(err.failure, Failure::SecretTooLarge { size: HUGE + 15, limit });
    assert_eq!(err.failure.kind(), "secret-too-large");
    let shown = err.to_string();
    assert_eq!(
        shown,
        format!(
            "job `{job}`: plugin fixture-flood@0.0.1: create: the new secret is {} bytes, over the job's limit of \
             {limit} bytes; refused",
            HUGE + 15
        )
    );
    let lines = logs::lines_with(&[job]);
    assert!(lines.iter().all(|l| !l.contains("sss")), "a piece of the refused secret was logged");
    assert!(lines.iter().any(|l| l.contains("1 log line(s) of this step were withheld")), "{lines:?}");
    // The run goes on: the next rotation's `create` works.
    let mut next = ctx(job, "none", None);
    next.rotation_id = "r2".into();
    run.create(&next).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn host_calls_past_the_cap_are_refused_unrecorded_and_fail_the_step() {
    logs::capture();
    let server = dev_server().await;
    let client = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    let grant = VaultGrant { path: "secret/data/flood/probe".into(), operations: vec![Operation::Read] };
    let limits = RunLimits { output: OutputLimits { host_calls: 50, ..OutputLimits::DEFAULT }, ..Default::default() };
    let cfg = RunConfig {
        limits,
        grants: Arc::new(Grants { vault: vec![grant], ..Grants::default() }),
        vault: Some(VaultBridge { client, handle: Handle::current() }),
        ..RunConfig::default()
    };
    let job = "flood-calls";
    let p = flood();
    let (err, calls): (StepError, usize) = tokio::task::spawn_blocking(move || {
        let mut run = p.start(job, cfg).unwrap();
        let err = run.create(&ctx(job, "calls", None)).expect_err("over the cap");
        // The next step has its budget back.
        let calls = run.host_calls().len();
        (err, calls)
    })
    .await
    .unwrap();
    // The fixture claimed success; the host failed the step anyway.
    assert_eq!(err.failure, Failure::HostCallLimit { limit: 50, refused: 100_000 - 50 });
    assert_eq!(err.failure.kind(), "host-call-limit");
    assert_eq!(calls, 50, "only the allowed calls are recorded");
    assert_eq!(server.stats().requests("secret/data/flood/probe"), 50);
    let warned = logs::lines_with(&[job, "reached its host-call limit"]);
    assert_eq!(warned.len(), 1, "the refusals are logged once: {warned:?}");
}

#[test]
fn a_plugin_describing_itself_with_a_1_mb_name_is_refused_at_load() {
    let rt = Runtime::new(RuntimeOptions { max_concurrent_runs: 2, ..Default::default() }).expect("runtime");
    let err = rt.load_file(&build_artifact("fixture_braggart"), None).expect_err("refused");
    assert!(matches!(err, rotator_core::plugin::LoadError::Describe { .. }), "{err}");
    let shown = err.to_string();
    assert!(shown.ends_with("describe() failed: its name has 1000000 bytes; at most 64 are allowed"), "{shown}");
    assert!(shown.len() < 1024, "{} bytes", shown.len());
}
