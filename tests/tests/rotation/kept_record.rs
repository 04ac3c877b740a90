//! A rotation starts from the state record this process last wrote instead
//! of reading it back (issue 15), and check-and-set keeps that safe: a
//! record someone else wrote since is never overwritten, and a rotation
//! someone else staged is resumed, not replaced.

use rotator_core::crash::{Action, Point};
use rotator_core::rotation::{RotateOptions, RotationError};
use rotator_core::state::Outcome;
use std::sync::Arc;

use rotator_core::plugin::Runtime;
use rotator_core::rotation::Job;
use rotator_core::state::StateStore;
use rotator_core::vault::VaultClient;
use rotator_devserver::DevServer;
use rotator_tests::{dev_server, jobs, store};

const JOB: &str = "[[jobs]]\nid = \"kept\"\nplugin = \"kv-random\"\nsecret = { path = \"kept/app\" }\ninterval = \"1h\"\nsettings = { field = \"password\" }\n";
const RECORD: &str = "rotator/state/kept";

/// Two processes on one dev server (each store keeps records of its own),
/// after `mine` has rotated the job once and kept its record.
struct Two {
    server: DevServer,
    vault: VaultClient,
    jobs: Vec<Job>,
    mine: StateStore,
    theirs: StateStore,
    rt: Arc<Runtime>,
}

async fn after_one_rotation() -> Two {
    let server = dev_server().await;
    let (vault, jobs, rt) = jobs(&server, JOB);
    let (mine, theirs) = (store(&vault), store(&vault));
    jobs[0].rotate(&mine, "test").await.unwrap();
    Two { server, vault, jobs, mine, theirs, rt }
}

/// The KV version of the job's secret: one per promotion.
async fn secret_version(vault: &VaultClient) -> Option<u64> {
    vault.kv_read("secret", "kept/app").await.unwrap().unwrap().version
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_rotation_reads_only_the_secret() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    let store = store(&vault);
    jobs[0].rotate(&store, "test").await.unwrap();
    server.start_request_log();
    jobs[0].rotate(&store, "test").await.unwrap();
    let seen: Vec<(String, String)> = server.take_request_log().into_iter().map(|r| (r.method, r.path)).collect();
    let expected = [
        ("GET", "secret/data/kept/app"),
        ("POST", "secret/data/rotator/state/kept"),
        ("POST", "secret/data/kept/app"),
        ("POST", "secret/data/rotator/state/kept"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(seen, expected, "the record, the secret, staging, promotion, the end: the record is not read back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_written_by_someone_else_since_is_built_on_not_overwritten() {
    let Two { server, vault, jobs, mine, theirs, rt: _rt } = after_one_rotation().await;
    // Another process (a store with a cache of its own) books something in
    // the record, as a scheduler does after a failed try.
    let mut v = theirs.load("kept").await.unwrap();
    let first = v.state.history[0].id.clone();
    v.state.retries = 2;
    theirs.save("kept", &mut v).await.unwrap();

    server.start_request_log();
    let report = jobs[0].rotate(&mine, "test").await.unwrap();
    let on_record: Vec<String> =
        server.take_request_log().into_iter().filter(|r| r.path.ends_with(RECORD)).map(|r| r.method).collect();
    assert_eq!(on_record, ["POST", "GET", "POST", "POST"], "staging refused, the record read, staged, ended");
    let state = theirs.load("kept").await.unwrap().state;
    let ids: Vec<&str> = state.history.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, [report.rotation_id.as_str(), first.as_str()]);
    assert_eq!(state.retries, 2, "the other writer's booking was kept");
    assert_eq!(state.rotations, 2);
    assert!(state.in_progress.is_none());
    // One KV version per rotation: the stale start promoted nothing twice.
    assert_eq!(secret_version(&vault).await, Some(2));
    // The record's versions: 1 and 2 from the first rotation, 3 elsewhere,
    // then this rotation's staging and end.
    let record = vault.kv_read("secret", RECORD).await.unwrap().unwrap();
    assert_eq!(record.version, Some(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_staged_by_someone_else_since_is_resumed_not_replaced() {
    let Two { server: _server, vault, jobs, mine, theirs, rt: _rt } = after_one_rotation().await;
    let options = RotateOptions { interrupt_at: Some(Point::after(Action::Stage)), ..RotateOptions::new("other") };
    assert!(matches!(jobs[0].rotate_with(&theirs, options).await, Err(RotationError::Interrupted { .. })));
    let staged = theirs.load("kept").await.unwrap().state.in_progress.unwrap();

    // This process still holds the idle record it wrote: its staging write
    // is refused, it reads the record, finds the rotation, and stops.
    let stale = jobs[0].rotate(&mine, "test").await.unwrap_err();
    assert!(stale.to_string().contains("kept"), "{stale}");
    let still = theirs.load("kept").await.unwrap().state.in_progress.unwrap();
    assert_eq!(
        (still.id.as_str(), still.pending.unwrap().expose()),
        (staged.id.as_str(), staged.pending.unwrap().expose())
    );

    // The next run resumes it.
    let report = jobs[0].rotate(&mine, "test").await.unwrap();
    assert_eq!(report.rotation_id, staged.id);
    assert!(report.resumed_from.is_some());
    let state = theirs.load("kept").await.unwrap().state;
    assert_eq!((state.rotations, state.history[0].outcome), (2, Outcome::Rotated));
    assert_eq!(secret_version(&vault).await, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_someone_else_finished_since_is_not_built_on() {
    let Two { server, vault, jobs, mine, theirs, rt: _rt } = after_one_rotation().await;
    let theirs_report = jobs[0].rotate(&theirs, "other").await.unwrap();

    // The secret this run reads may predate a rotation that ended after the
    // record was kept: a rollback to it would undo that rotation on the
    // target. So the run stops at staging, before any step touches it.
    server.start_request_log();
    let stale = jobs[0].rotate(&mine, "test").await.unwrap_err();
    assert!(stale.to_string().contains("kept"), "{stale}");
    let writes: Vec<String> =
        server.take_request_log().into_iter().filter(|r| r.method != "GET").map(|r| r.path).collect();
    assert_eq!(writes, ["secret/data/rotator/state/kept"], "only the refused staging write");
    assert_eq!(secret_version(&vault).await, Some(2));
    let state = theirs.load("kept").await.unwrap().state;
    assert!(state.in_progress.is_none());
    assert_eq!(state.history[0].id, theirs_report.rotation_id);

    // The next run reads the record afresh and rotates.
    let report = jobs[0].rotate(&mine, "test").await.unwrap();
    assert!(report.resumed_from.is_none());
    let state = theirs.load("kept").await.unwrap().state;
    assert_eq!((state.rotations, state.history[0].id.as_str()), (3, report.rotation_id.as_str()));
    assert_eq!(secret_version(&vault).await, Some(3));
}
