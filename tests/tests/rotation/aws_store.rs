//! A job whose secret lives in AWS Secrets Manager (moto's server mode,
//! request authentication on), its state in the dev server: the protocol
//! drives Secrets Manager's own staging labels, a resumed rotation finds its
//! pending version by token, a concurrent writer is detected, and deleted,
//! missing or forbidden secrets are typed errors that lose nothing.

use std::time::Duration;

use rotator_core::aws::{AwsClient, Service};
use rotator_core::crash::{Action, Point};
use rotator_core::rotation::{RotateOptions, RotationError};
use rotator_core::state::StateStore;
use rotator_core::store::{StoreError, StoreVersion};
use rotator_core::vault::{RequestRetry, VaultClient};
use rotator_tests::moto::{self, Moto};
use rotator_tests::{dev_server, jobs, logs, store};
use serde_json::{Value, json};

pub(crate) const REGION: &str = "eu-west-1";

/// A kv-random job rotating field `password` of the Secrets Manager secret `name`.
pub(crate) fn job_toml(id: &str, name: &str) -> String {
    format!(
        r#"
[[jobs]]
id = "{id}"
plugin = "kv-random"
secret = {{ aws = {{ id = "{name}", region = "{REGION}" }} }}
interval = "1h"
settings = {{ field = "password", length = 32 }}
"#
    )
}

/// Secrets Manager as the admin sees it.
pub(crate) struct Sm {
    client: AwsClient,
}

impl Sm {
    pub(crate) fn new(moto: &Moto) -> Self {
        Self { client: moto.client(&moto.admin, RequestRetry::NONE) }
    }

    pub(crate) async fn call(&self, op: &str, body: Value) -> Value {
        self.client.json(Service::SECRETS_MANAGER, REGION, op, &body).await.unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    pub(crate) async fn create(&self, name: &str, value: Value) {
        self.call("CreateSecret", json!({ "Name": name, "SecretString": value.to_string() })).await;
    }

    /// The version ids holding each label.
    pub(crate) async fn labels(&self, name: &str) -> Vec<(String, Vec<String>)> {
        let d = self.call("DescribeSecret", json!({ "SecretId": name })).await;
        let map = d["VersionIdsToStages"].as_object().cloned().unwrap_or_default();
        map.into_iter()
            .map(|(id, s)| (id, s.as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect()))
            .filter(|(_, s): &(String, Vec<String>)| !s.is_empty())
            .collect()
    }

    pub(crate) async fn holder(&self, name: &str, label: &str) -> Vec<String> {
        self.labels(name).await.into_iter().filter(|(_, s)| s.iter().any(|l| l == label)).map(|(id, _)| id).collect()
    }

    pub(crate) async fn current(&self, name: &str) -> (Value, String) {
        // Named: moto's default version is not moved by UpdateSecretVersionStage.
        let v = self.call("GetSecretValue", json!({ "SecretId": name, "VersionStage": "AWSCURRENT" })).await;
        (
            serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap(),
            v["VersionId"].as_str().unwrap().to_owned(),
        )
    }
}

fn state_store(vault: &VaultClient, moto: &Moto) -> StateStore {
    store(vault).with_aws(moto.client(&moto.admin, RequestRetry::default()))
}

/// A secret `<prefix>/<uuid>` holding `value` in moto, and job `job`
/// rotating it with its state in a dev server of its own.
struct World {
    sm: Sm,
    name: String,
    vault: VaultClient,
    states: StateStore,
    jobs: Vec<rotator_core::rotation::Job>,
    _runtime: std::sync::Arc<rotator_core::plugin::Runtime>,
    _server: rotator_devserver::DevServer,
}

async fn world(prefix: &str, job: &str, value: Value) -> World {
    let (moto, server) = (Moto::shared(), dev_server().await);
    let sm = Sm::new(moto);
    let name = format!("{prefix}/{}", uuid::Uuid::new_v4());
    sm.create(&name, value).await;
    let (vault, jobs, runtime) = jobs(&server, &job_toml(job, &name));
    let states = state_store(&vault, moto);
    World { sm, name, vault, states, jobs, _runtime: runtime, _server: server }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_secrets_manager_rotates_through_its_staging_labels() {
    logs::capture();
    let value = json!({ "username": "orders", "password": "initial-password" });
    let World { sm, name, states, jobs, .. } = &world("prod/orders/db", "aws-kv", value).await;
    let (_, first) = sm.current(name).await;
    let mut previous = StoreVersion::Id(first);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let report = jobs[0].rotate(states, "test").await.unwrap_or_else(|e| panic!("{e}"));
        // The new version's id is the rotation id: AWS's ClientRequestToken.
        assert_eq!(report.new_version, Some(StoreVersion::Id(report.rotation_id.clone())));
        assert_eq!(report.previous_version.as_ref(), Some(&previous));
        let (value, id) = sm.current(name).await;
        assert_eq!(id, report.rotation_id);
        assert_eq!(value["username"], "orders", "other fields are kept");
        let password = value["password"].as_str().unwrap().to_owned();
        assert_eq!(password.len(), 32);
        assert!(!seen.contains(&password) && password != "initial-password");
        seen.push(password);
        assert_eq!(sm.holder(name, "AWSPREVIOUS").await, [previous.to_string()]);
        assert!(sm.holder(name, "AWSPENDING").await.is_empty(), "AWSPENDING is taken off once done");
        previous = StoreVersion::Id(id);
    }
    // The history names the AWS versions; no value is in the logs.
    let state = states.load("aws-kv").await.unwrap().state;
    assert_eq!(state.history[0].version.as_ref(), Some(&previous));
    let text = logs::text();
    for password in &seen {
        assert!(!text.contains(password.as_str()), "a generated value reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_rotation_finds_its_pending_version_by_token() {
    let World { sm, name, states, jobs, .. } = &world("resume", "aws-resume", json!({ "password": "p" })).await;
    for point in [Point::after(Action::Stage), Point::after(Action::Test), Point::after(Action::Promote)] {
        let options = RotateOptions { interrupt_at: Some(point), ..RotateOptions::new("test") };
        let stopped = jobs[0].rotate_with(states, options).await;
        assert!(matches!(stopped, Err(RotationError::Interrupted { .. })), "{stopped:?}");
        let rotation = states.load("aws-resume").await.unwrap().state.in_progress.unwrap().id;
        // AWSPENDING is on the version whose token is the rotation id.
        assert_eq!(sm.holder(name, "AWSPENDING").await, std::slice::from_ref(&rotation), "{point}");
        let report = jobs[0].rotate(states, "test").await.unwrap_or_else(|e| panic!("{point}: {e}"));
        assert_eq!(report.rotation_id, rotation, "{point}: the same rotation is finished, not a new one");
        assert_eq!(sm.holder(name, "AWSCURRENT").await, [rotation], "{point}");
        assert!(sm.holder(name, "AWSPENDING").await.is_empty(), "{point}: no AWSPENDING stranded");
    }
    // A crash between the record and Secrets Manager's own staging: the
    // record names a rotation AWS never saw labelled. The resume stages it.
    let options = RotateOptions { interrupt_at: Some(Point::after(Action::Stage)), ..RotateOptions::new("test") };
    assert!(jobs[0].rotate_with(states, options).await.is_err());
    let rotation = states.load("aws-resume").await.unwrap().state.in_progress.unwrap().id;
    let unlabel = json!({ "SecretId": name, "VersionStage": "AWSPENDING", "RemoveFromVersionId": rotation });
    sm.call("UpdateSecretVersionStage", unlabel).await;
    assert!(sm.holder(name, "AWSPENDING").await.is_empty());
    let report = jobs[0].rotate(states, "test").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.rotation_id.as_str(), sm.holder(name, "AWSCURRENT").await),
        (rotation.as_str(), vec![rotation.clone()])
    );
    assert!(sm.holder(name, "AWSPENDING").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_writer_is_detected_and_never_overwritten() {
    let World { sm, name, states, jobs, .. } = &world("conflict", "aws-conflict", json!({ "password": "p" })).await;
    let options = RotateOptions { interrupt_at: Some(Point::after(Action::Test)), ..RotateOptions::new("test") };
    assert!(jobs[0].rotate_with(states, options).await.is_err());
    // Someone else writes a new current value meanwhile.
    let outside = json!({ "password": "written-by-a-human" }).to_string();
    sm.call("PutSecretValue", json!({ "SecretId": name, "SecretString": outside })).await;
    let (_, outside_id) = sm.current(name).await;
    let err = jobs[0].rotate(states, "test").await.unwrap_err();
    assert!(matches!(err, RotationError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("rolled back"), "{err}");
    let (value, id) = sm.current(name).await;
    assert_eq!((value["password"].as_str(), id.as_str()), (Some("written-by-a-human"), outside_id.as_str()));
    assert!(sm.holder(name, "AWSPENDING").await.is_empty(), "the rolled-back PENDING is unstaged");
    assert!(states.load("aws-conflict").await.unwrap().state.in_progress.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_deleted_secrets_are_refused_with_typed_errors() {
    let (moto, server) = (Moto::shared(), dev_server().await);
    let sm = Sm::new(moto);
    let missing = format!("missing/{}", uuid::Uuid::new_v4());
    let deleted = format!("deleted/{}", uuid::Uuid::new_v4());
    sm.create(&deleted, json!({ "password": "initial-password" })).await;
    sm.call("DeleteSecret", json!({ "SecretId": deleted, "RecoveryWindowInDays": 7 })).await;
    let toml = job_toml("aws-missing", &missing) + &job_toml("aws-deleted", &deleted);
    let (vault, jobs, _rt) = jobs(&server, &toml);
    let states = state_store(&vault, moto);
    for (job, expected) in [(&jobs[0], "create it first"), (&jobs[1], "scheduled for deletion")] {
        let err = job.rotate(&states, "test").await.unwrap_err();
        match &err {
            RotationError::Store { source, .. } if matches!(source.as_ref(), StoreError::Refused { .. }) => {
                assert!(err.to_string().contains(expected), "{err}");
            }
            other => panic!("expected a refusal, got {other}"),
        }
        assert!(!err.is_transient(), "{err}");
        // Nothing was staged: no record in progress to resume.
        assert!(states.load(&job.config.id).await.unwrap().state.in_progress.is_none());
    }
}

/// A proxy in front of moto that answers some operations with AWS's
/// throttling or outage errors instead of forwarding them.
mod faults {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode};

    #[derive(Default)]
    pub struct Plan {
        /// Answer this many requests (any operation) with 400 ThrottlingException.
        pub throttle: AtomicU32,
        /// Answer this many `UpdateSecretVersionStage` calls with 503.
        pub outage: AtomicU32,
    }

    fn take(n: &AtomicU32) -> bool {
        n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
    }

    /// Start the proxy; its URL and the plan it follows.
    pub async fn start(upstream: String) -> (String, Arc<Plan>) {
        let plan = Arc::new(Plan::default());
        let http = reqwest::Client::new();
        let p = plan.clone();
        let app = axum::Router::new().fallback(move |method: Method, headers: HeaderMap, body: Bytes| {
            let (plan, http, upstream) = (p.clone(), http.clone(), upstream.clone());
            async move {
                let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                if take(&plan.throttle) {
                    let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
                    return (StatusCode::BAD_REQUEST, body.to_owned());
                }
                if target.ends_with("UpdateSecretVersionStage") && take(&plan.outage) {
                    let body = r#"{"__type":"ServiceUnavailable","message":"try later"}"#;
                    return (StatusCode::SERVICE_UNAVAILABLE, body.to_owned());
                }
                // The signature covers the Host header the client sent: keep it.
                let mut forward = http.request(method, &upstream).body(body);
                for (name, value) in &headers {
                    forward = forward.header(name, value);
                }
                let answer = forward.send().await.unwrap();
                let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
                (status, answer.text().await.unwrap())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, plan)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_and_an_outage_keeps_pending_for_the_next_run() {
    let World { sm, name, vault, jobs, .. } = &world("faults", "aws-faults", json!({ "password": "p" })).await;
    let moto = Moto::shared();
    let (proxy, plan) = faults::start(moto.endpoint.clone()).await;
    let retry = RequestRetry { attempts: 4, base: Duration::from_millis(10), max: Duration::from_millis(50) };
    let states = &store(vault).with_aws(moto::client_at(&proxy, &moto.admin, retry));

    // Throttled three times in a row: the client's retries absorb it.
    plan.throttle.store(3, std::sync::atomic::Ordering::SeqCst);
    let report = jobs[0].rotate(states, "test").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sm.holder(name, "AWSCURRENT").await, [report.rotation_id]);

    // Promotion fails for longer than the retries: PENDING stays staged,
    // in the record and as AWSPENDING, and the error says it may pass.
    plan.outage.store(4, std::sync::atomic::Ordering::SeqCst);
    let err = jobs[0].rotate(states, "test").await.unwrap_err();
    assert!(err.is_transient() && matches!(err, RotationError::Store { .. }), "{err}");
    let rotation = states.load("aws-faults").await.unwrap().state.in_progress.expect("still in progress").id;
    assert_eq!(sm.holder(name, "AWSPENDING").await, std::slice::from_ref(&rotation));
    // AWS is back: the next run finishes that rotation.
    let report = jobs[0].rotate(states, "test").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.rotation_id, rotation);
    assert_eq!(sm.holder(name, "AWSCURRENT").await, [rotation]);
    assert!(sm.holder(name, "AWSPENDING").await.is_empty());
}
