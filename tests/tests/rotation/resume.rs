//! Resuming, in process: a rotation interrupted at every crash point is
//! finished by the next run (never started afresh), and the end-state rule
//! holds: PENDING is gone, one KV version and one history entry per rotation.

use rotator_core::crash::{Action, Point, all_points};
use rotator_core::rotation::{RotateOptions, RotationError};
use rotator_core::state::Outcome;
use rotator_tests::{dev_server, jobs, store};

const JOB: &str = "[[jobs]]\nid = \"app\"\nplugin = \"kv-random\"\nsecret = { path = \"resume/app\" }\ninterval = \"1h\"\nsettings = { field = \"password\" }\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_interrupted_anywhere_is_resumed_to_the_same_end() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    let (job, store) = (&jobs[0], store(&vault));
    let mut rotations = 0u64;
    // Points a successful rotation never passes (rollback) just run through.
    for point in all_points() {
        let options = RotateOptions { interrupt_at: Some(point), ..RotateOptions::new("test") };
        let first = job.rotate_with(&store, options).await;
        let state = store.load("app").await.unwrap().state;
        let staged = state.in_progress.as_ref().map(|p| p.id.clone());
        match first {
            Err(RotationError::Interrupted { .. }) => {
                let report = job.rotate(&store, "test").await.unwrap_or_else(|e| panic!("{point}: {e}"));
                if let Some(id) = staged {
                    assert_eq!(report.rotation_id, id, "{point}: a staged rotation was started afresh");
                    assert!(report.resumed_from.is_some(), "{point}");
                }
                // Interrupted after its final record: that run already counted.
                if point == Point::after(Action::RecordDone) {
                    rotations += 1;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("{point}: {e}"),
        }
        rotations += 1;
        let state = store.load("app").await.unwrap().state;
        assert!(state.in_progress.is_none(), "{point}: PENDING left behind");
        assert_eq!(state.rotations, rotations, "{point}");
        let ok = state.history.iter().filter(|h| h.outcome == Outcome::Rotated).count() as u64;
        assert_eq!(ok, rotations.min(20), "{point}");
        let secret = vault.kv_read("secret", "resume/app").await.unwrap().unwrap();
        assert_eq!(secret.version, Some(rotations), "{point}: one KV version per rotation");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_written_before_a_crash_is_recognised_not_redone() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    let store = store(&vault);
    let options = RotateOptions { interrupt_at: Some(Point::after(Action::Promote)), ..RotateOptions::new("test") };
    assert!(jobs[0].rotate_with(&store, options).await.is_err());
    // The secret is at PENDING, but the record still says `staged` (only
    // staging, a rollback and the end are recorded).
    let pending = store.load("app").await.unwrap().state.in_progress.unwrap();
    assert_eq!(pending.stage.as_str(), "staged");
    let report = jobs[0].rotate(&store, "test").await.unwrap();
    assert_eq!(report.new_version, Some(rotator_core::store::StoreVersion::Kv(1)));
    // Found current, so the resume went straight to `finish`: `set` and
    // `test` never ran against a value that was already live.
    let steps: Vec<&str> = report.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(steps, ["finish"], "{steps:?}");
    let meta = vault.kv_metadata("secret", "resume/app").await.unwrap().unwrap();
    assert_eq!(meta["current_version"], 1, "promotion was written twice");
}
