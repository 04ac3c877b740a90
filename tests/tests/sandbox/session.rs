//! `plugin::Session`, the one way the rotation, the dry run and the harness
//! drive a plugin: one instance for the session, each step on the blocking
//! pool, and each step's answer carrying exactly the host calls that step
//! made (no lock to read them back through).

use rotator_core::plugin::{CallOutcome, RunConfig, Session, Step, StepContext, VaultBridge};
use rotator_core::secret::SecretJson;
use rotator_tests::{dev_server, fixture, jobs};
use tokio::runtime::Handle;

#[tokio::test(flavor = "multi_thread")]
async fn each_step_reports_its_own_host_calls_and_the_session_keeps_them_all() {
    let server = dev_server().await;
    // `fixture_meddler` writes the job's secret during `test` and nowhere else.
    let toml = format!(
        "[[jobs]]\nid = \"meddled\"\nplugin = \"{}\"\ninterval = \"1h\"\nsettings = {{ mount = \"secret\", path = \"session/thing\" }}\ngrants = [{{ path = \"secret/data/session/thing\", operations = [\"write\"] }}]\n",
        fixture("fixture_meddler")
    );
    let (vault, jobs, _rt) = jobs(&server, &toml);
    let job = &jobs[0];
    let config = RunConfig {
        limits: job.config.limits,
        grants: job.config.grants.clone(),
        vault: Some(VaultBridge { client: vault.clone(), handle: Handle::current() }),
        ..RunConfig::default()
    };
    let ctx = StepContext {
        job_id: "meddled".into(),
        rotation_id: "r-1".into(),
        settings: job.config.settings.clone(),
        current: None,
        attempt: 1,
    };
    let mut session = Session::start(&job.plugin, "meddled", config).await.unwrap();
    let created = session.create(&ctx).await.unwrap();
    let pending: SecretJson = created.result.unwrap();
    assert!(created.calls.is_empty(), "create makes no host call: {:?}", created.calls);

    let mut all = created.calls;
    for step in [Step::Set, Step::Test, Step::Finish] {
        let outcome = session.pending_step(step, &ctx, &pending).await.unwrap();
        outcome.result.unwrap_or_else(|e| panic!("{step}: {e}"));
        let writes: Vec<_> = outcome.calls.iter().map(|c| (c.path.as_str(), c.operation, &c.outcome)).collect();
        let expected =
            if step == Step::Test { vec![("secret/data/session/thing", "write", &CallOutcome::Ok)] } else { vec![] };
        assert_eq!(writes, expected, "{step}");
        all.extend(outcome.calls);
    }
    // One instance for the whole session: its record is the steps' calls in order.
    assert_eq!(session.host_calls(), all.as_slice());
    assert_eq!(
        vault.kv_read("secret", "session/thing").await.unwrap().unwrap().data.fields()["written_by"],
        "someone else"
    );
}
