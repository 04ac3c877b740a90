//! Public fields (issue 16): a plugin may declare fields of its secret to be
//! identifiers, shown unredacted in what it says, but that must never show a
//! secret. `fixture-unmasker` declares `username` and `note` public and
//! tries to abuse it: it copies the current password into them, asks the
//! host to generate a public field, and quotes everything in a log line and
//! an error. Only honest identifiers show.

use rotator_core::plugin::{CurrentSecret, Failure, Plugin, RunConfig, Runtime, RuntimeOptions, StepContext};
use rotator_core::secret::{PublicFields, REDACTED, SecretJson};
use rotator_test_artifacts::build_artifact;
use rotator_tests::logs;
use serde_json::json;

fn unmasker() -> Plugin {
    let rt = Runtime::new(RuntimeOptions { max_concurrent_runs: 4, ..Default::default() }).expect("runtime");
    rt.load_file(&build_artifact("fixture_unmasker"), None).expect("fixture-unmasker")
}

fn ctx(job: &str, mode: &str, current_password: &str) -> StepContext {
    let current = json!({ "username": "current-user", "password": current_password });
    StepContext {
        job_id: job.into(),
        rotation_id: format!("{job}-r1"),
        settings: json!({ "mode": mode }),
        current: Some(CurrentSecret { data: SecretJson::new(current.to_string()), version: Some(1) }),
        attempt: 1,
    }
}

/// A run of `job` with the plugin's own public fields, or `public`.
fn start(p: &Plugin, job: &str, public: Option<&[&str]>) -> rotator_core::plugin::Run {
    let public = public.map_or_else(|| p.info().public_fields.clone(), |f| PublicFields::new(f).unwrap());
    p.start(job, RunConfig { public, ..RunConfig::default() }).unwrap()
}

/// `create` then `test` (which fails on purpose, quoting the secret): the
/// error message and the step's log lines.
fn create_and_test(p: &Plugin, job: &str, mode: &str, current: &str, public: Option<&[&str]>) -> (String, String) {
    let mut run = start(p, job, public);
    let c = ctx(job, mode, current);
    let pending = run.create(&c).unwrap();
    let err = run.test(&c, &pending).unwrap_err().to_string();
    let lines = logs::lines_with(&[job, "testing username="]).concat();
    (err, lines)
}

#[test]
fn the_plugin_declares_its_public_fields_in_its_settings_schema() {
    assert_eq!(unmasker().info().public_fields.names(), ["username", "note"]);
}

#[test]
fn a_declared_username_shows_and_the_password_next_to_it_does_not() {
    logs::capture();
    let p = unmasker();
    let (err, lines) = create_and_test(&p, "unmask-plain", "plain", "current-pw-1234", None);
    for text in [&err, &lines] {
        assert!(text.contains(r#"username="user-unmask-plain-r1""#), "{text}");
        assert!(text.contains(&format!("password=\"{REDACTED}\"")), "{text}");
        assert!(!text.contains("pw-unmask-plain-r1"), "the password shows");
    }
    // The job's `public_fields = []` makes every field secret again.
    let (err, _) = create_and_test(&p, "unmask-none", "plain", "current-pw-1234", Some(&[]));
    assert!(err.contains(&format!("username=\"{REDACTED}\"")), "{err}");
}

#[test]
fn a_secret_copied_into_public_fields_stays_redacted() {
    logs::capture();
    let p = unmasker();
    let current = "current-password-to-steal";
    let (err, lines) = create_and_test(&p, "unmask-copy", "copy", current, None);
    for text in [&err, &lines] {
        assert!(!text.contains(current), "the current password shows: {text}");
        assert!(text.contains(&format!("username=\"{REDACTED}\"")), "{text}");
        assert!(text.contains(&format!("note={{\"inner\":\"{REDACTED}\"}}")), "{text}");
    }
}

#[test]
fn the_host_refuses_to_generate_a_public_field() {
    let p = unmasker();
    let mut run = start(&p, "unmask-generate", None);
    let err = run.create(&ctx("unmask-generate", "generate", "current-pw-1234")).unwrap_err();
    let Failure::BadOutput(message) = &err.failure else { panic!("{err}") };
    assert!(message.contains("field `username` is public for this job"), "{message}");
    // With `username` not public, the same plugin gets its generated value.
    let mut run = start(&p, "unmask-generate-ok", Some(&["note"]));
    let secret = run.create(&ctx("unmask-generate-ok", "generate", "current-pw-1234")).unwrap();
    assert_eq!(secret.fields()["username"].as_str().unwrap().len(), 24);
}
