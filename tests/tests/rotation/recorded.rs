//! A rotation returns the record it ended with (`Job::rotate_recorded`), so
//! a caller that books outcomes (the scheduler) reads it from the return
//! value, not from a slot its `Finalize` hook filled, and books each outcome
//! exactly once: `recorded` is `Some` exactly when the rotation's own final
//! write holds the outcome, and is then what Vault holds.

use rotator_core::crash::{Action, Point};
use rotator_core::rotation::{Finalize, RotateOptions, Rotation, RotationError};
use rotator_core::secret::SecretJson;
use rotator_core::state::{JobState, Outcome};
use rotator_tests::{dev_server, fixture, jobs, store};

const JOB: &str = "[[jobs]]\nid = \"app\"\nplugin = \"kv-random\"\nsecret = { path = \"recorded/app\" }\ninterval = \"1h\"\nsettings = { field = \"password\" }\n";

/// A hook that marks the record, as the scheduler's bookkeeping would.
fn marking<'a>() -> Option<Finalize<'a>> {
    Some(Box::new(|state: &mut JobState, result| {
        state.retries = if result.is_ok() { 7 } else { 9 };
    }))
}

/// What Vault and `recorded` agree on.
fn summary(s: &JobState) -> (u64, u32, Option<String>, Vec<(String, Outcome)>, bool) {
    let history = s.history.iter().map(|h| (h.id.clone(), h.outcome)).collect();
    (s.rotations, s.retries, s.last_error.clone(), history, s.in_progress.is_some())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_rotation_returns_the_record_vault_holds() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    let store = store(&vault);
    let options = RotateOptions { finalize: marking(), ..RotateOptions::new("test") };
    let Rotation { result, recorded } = jobs[0].rotate_recorded(&store, options).await;
    let report = result.unwrap();
    let recorded = recorded.expect("a finished rotation returns its final record");
    assert_eq!(recorded.retries, 7, "the hook's bookkeeping is in the returned record");
    assert_eq!(recorded.history[0].id, report.rotation_id);
    assert_eq!(summary(&recorded), summary(&store.load("app").await.unwrap().state));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_rotation_returns_the_failure_it_booked() {
    let server = dev_server().await;
    let toml = format!(
        "[[jobs]]\nid = \"contested\"\nplugin = \"{}\"\nsecret = {{ mount = \"secret\", path = \"recorded/thing\" }}\ninterval = \"1h\"\nsettings = {{ mount = \"secret\", path = \"recorded/thing\" }}\ngrants = [{{ path = \"secret/data/recorded/thing\", operations = [\"write\"] }}]\n",
        fixture("fixture_meddler")
    );
    let (vault, jobs, _rt) = jobs(&server, &toml);
    let before = SecretJson::new(r#"{"v":"original"}"#.into());
    vault.kv_write("secret", "recorded/thing", &before, Some(0)).await.unwrap();
    let store = store(&vault);
    let options = RotateOptions { finalize: marking(), ..RotateOptions::new("test") };
    let Rotation { result, recorded } = jobs[0].rotate_recorded(&store, options).await;
    assert!(matches!(result, Err(RotationError::Conflict { .. })), "{result:?}");
    let recorded = recorded.expect("a rolled-back rotation wrote its final record");
    assert_eq!(recorded.retries, 9, "the failure is booked in the record the rotation wrote");
    assert_eq!(recorded.history.len(), 1);
    assert_eq!(recorded.history[0].outcome, Outcome::Failed);
    assert!(recorded.last_error.as_deref().unwrap().contains("changed by someone else"));
    assert_eq!(summary(&recorded), summary(&store.load("contested").await.unwrap().state));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_that_stops_before_its_final_record_returns_none() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    let store = store(&vault);
    // Before anything was staged, and with PENDING staged: either way the
    // outcome is not in Vault, so the caller must book it.
    for (point, staged) in [(Point::before(Action::Stage), false), (Point::after(Action::Set), true)] {
        let options = RotateOptions { finalize: marking(), interrupt_at: Some(point), ..RotateOptions::new("test") };
        let Rotation { result, recorded } = jobs[0].rotate_recorded(&store, options).await;
        assert!(matches!(result, Err(RotationError::Interrupted { .. })), "{point}: {result:?}");
        assert!(recorded.is_none(), "{point}: no final record was written");
        let state = store.load("app").await.unwrap().state;
        assert_eq!(state.in_progress.is_some(), staged, "{point}");
        assert_eq!(state.retries, 0, "{point}: the hook did not run");
        assert!(state.history.is_empty(), "{point}");
    }
    // Interrupted right after the final record: it was written, so it is returned.
    let options = RotateOptions {
        finalize: marking(),
        interrupt_at: Some(Point::after(Action::RecordDone)),
        ..RotateOptions::new("test")
    };
    let Rotation { result, recorded } = jobs[0].rotate_recorded(&store, options).await;
    assert!(matches!(result, Err(RotationError::Interrupted { .. })), "{result:?}");
    let recorded = recorded.expect("the final record was written before the interruption");
    assert_eq!(summary(&recorded), summary(&store.load("app").await.unwrap().state));
    assert_eq!(recorded.rotations, 1);
}
