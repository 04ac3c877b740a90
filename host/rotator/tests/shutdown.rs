//! Signals to the real `rotator run` process. SIGINT in the middle of a
//! rotation lets that rotation finish, the process exits 0, and the job's
//! state record holds no PENDING. SIGHUP reloads the config file: a new
//! job appears, and a broken file is refused with its problems logged
//! while the running config stays.
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

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_config_and_a_broken_file_changes_nothing() {
    let rig = Rig::kv_random_without_vault().await;
    let mut daemon = rig.daemon(None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !daemon.is_up() {
        assert!(Instant::now() < deadline && daemon.child.try_wait().unwrap().is_none(), "{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://{}", daemon.api_addr().unwrap());
    let jobs = || async {
        let answer = reqwest::Client::new()
            .get(format!("{base}/scheduler/jobs"))
            .bearer_auth("crash-suite-api-token-0123456789")
            .send()
            .await
            .unwrap();
        let list: serde_json::Value = answer.json().await.unwrap();
        list["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(jobs().await, [rig::JOB]);

    let path = rig.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    let added = "[[jobs]]\nid = \"added-on-hup\"\nplugin = \"kv-random\"\ninterval = \"1h\"\nenabled = false\n\
                 settings = { field = \"password\" }\n";
    std::fs::write(&path, format!("{original}{added}")).unwrap();
    daemon.signal("HUP");
    while !jobs().await.contains(&"added-on-hup".to_owned()) {
        assert!(Instant::now() < deadline, "the reload did not add the job:\n{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::write(&path, format!("{original}[[jobs]]\nid = 7\n")).unwrap();
    daemon.signal("HUP");
    while !daemon.output().contains("config reload refused") {
        assert!(Instant::now() < deadline, "no refusal logged:\n{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.output().contains("rotator.toml:"), "the problem is located:\n{}", daemon.output());
    let mut still = jobs().await;
    still.sort();
    assert_eq!(still, ["added-on-hup", rig::JOB], "the running config stays");
    daemon.signal("TERM");
    assert!(daemon.child.wait().unwrap().success());
}
