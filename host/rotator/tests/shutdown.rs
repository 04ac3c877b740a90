//! Clean shutdown of the real `rotator run` process: SIGINT in the middle
//! of a rotation lets that rotation finish, the process exits 0, and the
//! job's state record holds no PENDING.
//!
//! The rotation is held inside its `set` step without any timing: the test
//! keeps the role's catalog row in an open transaction, so the plugin's
//! `ALTER ROLE … PASSWORD` waits in PostgreSQL until the test lets it go,
//! which it does only after the daemon has logged that it is shutting down.

// The throwaway servers of the integration tests, used through the lib
// (not included by path, which would run their own tests here again).
use rotator_tests::{moto, postgres, rabbitmq};
#[path = "support/rig.rs"]
#[allow(dead_code)]
mod rig;

use std::time::{Duration, Instant};

use rig::{ROLE, Rig};

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_a_rotation_lets_it_finish_and_exits_0() {
    // Room for the held `set` step on a busy machine.
    let rig = Rig::new("limits = { step_timeout = \"5m\" }\n").await;
    rig.make_due().await;
    let held = rig.pg().hold_role(ROLE).await;
    let mut daemon = rig.daemon(None);
    rig.pg().wait_for_lock_waiter().await;
    let staged = rig.state().await.in_progress.expect("the rotation is staged: `set` is running");
    assert_eq!(staged.stage.as_str(), "staged");

    daemon.signal("INT");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !daemon.output().contains("shutting down") {
        assert!(Instant::now() < deadline, "no shutdown after SIGINT:\n{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(daemon.child.try_wait().unwrap().is_none(), "rotator exited with a rotation under way");

    held.batch_execute("ROLLBACK").await.unwrap();
    let status = tokio::task::spawn_blocking(move || (daemon.child.wait().unwrap(), daemon)).await.unwrap();
    let (status, mut daemon) = status;
    assert_eq!(status.code(), Some(0), "rotator stopped with {status}:\n{}", daemon.output());
    // Finished, not abandoned: one rotation, no PENDING, and the password in
    // Vault is the one PostgreSQL accepts.
    rig.check(1, "after SIGINT during `set`").await;
    let output = daemon.output();
    assert!(!output.contains("abandoning"), "{output}");
}
