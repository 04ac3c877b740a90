//! The built-in `aws-iam-access-key` plugin end to end against moto with
//! request authentication on ([`moto::shared`], one server per test binary),
//! through the host's `http` import in handle mode: every call is signed by
//! the host with the user's own key, and the plugin never holds a secret
//! key. The job's secret lives in Vault KV on the dev server. Each test has
//! IAM users of its own, so the tests share the server safely. Every
//! secret key the tests see must be absent from the captured logs and from
//! every error.

use rotator_core::rotation::{Job, RotationError};
use rotator_core::secret::SecretJson;
use rotator_core::vault::VaultClient;
use rotator_daemon::start::StartOptions;
use rotator_devserver::DevServer;
use rotator_tests::logs::{self, capture};
use rotator_tests::moto::{self, AwsKey, Moto, SELF_SERVICE_POLICY};
use rotator_tests::{dev_server, jobs, store};

use crate::one_runtime;

/// The server, started by the first test that needs it.
async fn server() -> &'static Moto {
    tokio::task::spawn_blocking(moto::shared).await.unwrap()
}

/// The job's config as [`Moto::access_key_job`] writes it.
fn as_is(config: String) -> String {
    config
}

/// A user `user` with `policy` and one key, a job `id` rotating that key
/// at `secret/aws/<id>` (its config as `edit` makes it of
/// [`Moto::access_key_job`]'s), loaded against a fresh dev server holding
/// the key as version 1.
async fn setup(
    moto: &Moto,
    id: &str,
    user: &str,
    policy: &str,
    edit: impl FnOnce(String) -> String,
) -> (AwsKey, World) {
    let key = moto.create_user(user, policy).await;
    let server = dev_server().await;
    let config = edit(moto.access_key_job(id, &format!("aws/{id}"), user));
    let (vault, mut loaded, _rt) = jobs(&server, &config);
    let secret = SecretJson::new(Moto::secret_of(&key).to_string());
    vault.kv_write("secret", &format!("aws/{id}"), &secret, None).await.unwrap();
    (key, World { _server: server, vault, job: loaded.remove(0), id: id.to_owned() })
}

/// One job against one dev server.
struct World {
    _server: DevServer,
    vault: VaultClient,
    job: Job,
    id: String,
}

impl World {
    async fn rotate(&self) -> Result<(), RotationError> {
        self.job.rotate(&store(&self.vault), "test").await.map(drop)
    }

    /// The key the job's secret holds, and the secret's version.
    async fn key(&self) -> (AwsKey, u64) {
        let s = self.vault.kv_read("secret", &format!("aws/{}", self.id)).await.unwrap().expect("the secret exists");
        let f = s.data.fields();
        assert_eq!(f.len(), 2, "the secret holds access_key_id and secret_access_key only");
        let text = |k: &str| f[k].as_str().unwrap().to_owned();
        (AwsKey { id: text("access_key_id"), secret: text("secret_access_key") }, s.version.unwrap())
    }
}

/// `key` authenticates as IAM user `user`.
async fn works_as(moto: &Moto, key: &AwsKey, user: &str) {
    let arn = moto.caller_identity(key).await.unwrap_or_else(|e| panic!("{key:?} is refused: {e:?}"));
    assert!(arn.ends_with(&format!(":user/{user}")), "{key:?} authenticates as {arn}");
}

/// `config` with setting `name` (`iam_endpoint`, `sts_endpoint`) set to
/// `origin`, and an HTTP grant for it.
fn endpoint_at(config: String, name: &str, origin: &str) -> String {
    let key = format!("{name} = \"");
    let at = config.find(&key).unwrap() + key.len();
    let end = at + config[at..].find('"').unwrap();
    let grant = format!("\n[[jobs.grants]]\nhttp = \"{origin}\"\npaths = [\"/\"]\nmethods = [\"POST\"]\n");
    format!("{}{origin}{}{grant}", &config[..at], &config[end..])
}

/// (id, status) pairs, for comparing with [`Moto::access_keys`].
fn keys(pairs: &[(&AwsKey, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, s)| (k.id.clone(), (*s).to_owned())).collect()
}

/// No secret key appears in the captured logs or in `errors`.
fn assert_secret_keys_hidden(secrets: &[&AwsKey], errors: &[String]) {
    let text = logs::text();
    for key in secrets {
        assert!(!text.contains(&key.secret), "a secret access key reached the logs");
        assert!(!errors.iter().any(|e| e.contains(&key.secret)), "a secret access key reached an error");
    }
}

#[test]
fn rotations_create_a_working_key_deactivate_the_old_one_and_delete_it_next_time() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        let user = "iam-rotated";
        let (first, w) = setup(moto, "iam-rotated", user, SELF_SERVICE_POLICY, as_is).await;

        w.rotate().await.unwrap_or_else(|e| panic!("{e}"));
        let (second, version) = w.key().await;
        assert_eq!(version, 2);
        assert_ne!(second.id, first.id);
        works_as(moto, &second, user).await;
        assert_eq!(moto.access_keys(user).await, keys(&[(&first, "Inactive"), (&second, "Active")]));

        // The next rotation deletes the key the previous one deactivated.
        w.rotate().await.unwrap_or_else(|e| panic!("{e}"));
        let (third, version) = w.key().await;
        assert_eq!(version, 3);
        works_as(moto, &third, user).await;
        assert_eq!(moto.access_keys(user).await, keys(&[(&second, "Inactive"), (&third, "Active")]));
        let deleted = logs::lines_with(&["job=\"iam-rotated\"", "deleted access key `", "inactive (deactivated by"]);
        assert_eq!(deleted.len(), 1, "{deleted:?}");
        assert_eq!(logs::lines_with(&["job=\"iam-rotated\"", "deactivated; the next rotation deletes it"]).len(), 2);
        assert_secret_keys_hidden(&[&first, &second, &third], &[]);
    })
}

#[test]
fn an_unused_second_key_is_an_orphan_and_is_deleted() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        let user = "iam-orphan";
        let (first, w) = setup(moto, "iam-orphan", user, SELF_SERVICE_POLICY, as_is).await;
        // As a create that crashed before staging leaves it: active, never used.
        let orphan = moto.create_key(user).await;

        w.rotate().await.unwrap_or_else(|e| panic!("{e}"));
        let (new, _) = w.key().await;
        works_as(moto, &new, user).await;
        assert_eq!(moto.access_keys(user).await, keys(&[(&first, "Inactive"), (&new, "Active")]));
        let lines =
            logs::lines_with(&["job=\"iam-orphan\"", &format!("deleted access key `{}`", orphan.id), "never used"]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_secret_keys_hidden(&[&first, &orphan, &new], &[]);
    })
}

#[test]
fn a_second_active_used_key_is_refused_by_name_and_nothing_is_deleted() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        let user = "iam-two-keys";
        let (first, w) = setup(moto, "iam-two-keys", user, SELF_SERVICE_POLICY, as_is).await;
        let foreign = moto.create_key(user).await;
        works_as(moto, &foreign, user).await;

        let err = w.rotate().await.unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), "permanent", "{msg}");
        assert!(msg.contains(&format!("second access key `{}`", foreign.id)), "{msg}");
        assert!(msg.contains("not managed by this job") && msg.contains("nothing was deleted"), "{msg}");
        assert_eq!(w.key().await.1, 1, "the failed rotation changed Vault");
        assert_eq!(moto.access_keys(user).await, keys(&[(&first, "Active"), (&foreign, "Active")]));
        works_as(moto, &first, user).await;

        // Nothing is stuck: once the operator removes the foreign key, the job rotates.
        let form = [("Action", "DeleteAccessKey"), ("UserName", user), ("AccessKeyId", foreign.id.as_str())];
        moto.call(&moto.admin, "iam", moto::REGION, &form).await.unwrap();
        w.rotate().await.unwrap_or_else(|e| panic!("{e}"));
        works_as(moto, &w.key().await.0, user).await;
        assert_secret_keys_hidden(&[&first, &foreign, &w.key().await.0], &[msg]);
    })
}

#[test]
fn missing_permissions_and_a_wrong_secret_key_are_typed_errors_and_change_nothing() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        let sts_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#;
        let (key, w) = setup(moto, "iam-no-policy", "iam-no-policy", sts_only, as_is).await;
        let err = w.rotate().await.unwrap_err();
        let denied = err.to_string();
        assert_eq!(err.kind(), "permanent", "{denied}");
        assert!(denied.contains("(AccessDenied)") && denied.contains("does not allow iam:ListAccessKeys"), "{denied}");
        assert_eq!(w.key().await.1, 1);
        assert_eq!(moto.access_keys("iam-no-policy").await, keys(&[(&key, "Active")]));

        let (key, w) = setup(moto, "iam-wrong-secret", "iam-wrong-secret", SELF_SERVICE_POLICY, as_is).await;
        let wrong = AwsKey { id: key.id.clone(), secret: key.secret.chars().rev().collect() };
        let secret = SecretJson::new(Moto::secret_of(&wrong).to_string());
        w.vault.kv_write("secret", "aws/iam-wrong-secret", &secret, None).await.unwrap();
        let err = w.rotate().await.unwrap_err();
        let refused = err.to_string();
        assert_eq!(err.kind(), "permanent", "{refused}");
        assert!(refused.contains("(SignatureDoesNotMatch)") && refused.contains("AWS does not accept"), "{refused}");
        assert_eq!(moto.access_keys("iam-wrong-secret").await, keys(&[(&key, "Active")]));
        assert_secret_keys_hidden(&[&key, &wrong], &[denied, refused]);
    })
}

#[test]
fn a_new_key_sts_refuses_is_transient_and_rolled_back_with_the_current_key() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        // STS at a second server, which knows no key of this user: the
        // new key is refused there as AWS refuses a key IAM has not yet
        // spread, so `test` retries, gives up `transient`, and `rollback`
        // deletes the new key, signed with the current one.
        let other = tokio::task::spawn_blocking(Moto::start).await.unwrap();
        let user = "iam-sts-refuses";
        let elsewhere = |config: String| endpoint_at(config, "sts_endpoint", &other.endpoint);
        let (key, w) = setup(moto, user, user, SELF_SERVICE_POLICY, elsewhere).await;
        let err = w.rotate().await.unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), "transient", "{msg}");
        assert!(
            msg.contains("AWS does not accept the new key of user `iam-sts-refuses` yet (InvalidClientTokenId)"),
            "{msg}"
        );
        assert!(msg.ends_with("; rolled back"), "{msg}");
        assert_eq!(w.key().await.1, 1, "the failed rotation changed Vault");
        assert_eq!(moto.access_keys(user).await, keys(&[(&key, "Active")]), "the new key was not deleted");
        assert_eq!(logs::lines_with(&["job=\"iam-sts-refuses\"", "the abandoned new access key", "deleted"]).len(), 1);
        works_as(moto, &key, user).await;
        assert_secret_keys_hidden(&[&key], &[msg]);
    })
}

#[test]
fn without_the_http_grant_every_call_is_refused() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        let user = "iam-no-grant";
        let no_grant = |config: String| config.split("[[jobs.grants]]").next().unwrap().to_owned();
        let (key, w) = setup(moto, user, user, SELF_SERVICE_POLICY, no_grant).await;
        let err = w.rotate().await.unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), "permanent", "{msg}");
        assert!(msg.contains("http: denied"), "{msg}");
        let target = format!("{}/", moto.endpoint);
        assert_eq!(logs::denials(user, "aws-iam-access-key@0.1.0", "not in the job's grants", "post", &target), 1);
        assert_eq!(moto.access_keys(user).await, keys(&[(&key, "Active")]));
        assert_eq!(w.key().await.1, 1);
    })
}

#[test]
fn a_dry_run_describes_the_calls_and_changes_nothing() {
    one_runtime().block_on(async {
        let moto = server().await;
        let user = "iam-planned";
        let (key, w) = setup(moto, user, user, SELF_SERVICE_POLICY, as_is).await;
        let plan = w.job.plan(&store(&w.vault)).await.unwrap_or_else(|e| panic!("{e}"));
        let summaries: Vec<&str> = plan.plugin_actions.iter().map(|a| a.summary.as_str()).collect();
        let url = &moto.endpoint;
        for want in [
            format!("{url}: ListAccessKeys of `{user}` (signed with the current key)"),
            "CreateAccessKey, the host captures the new secret key".to_owned(),
            format!("{url}: GetCallerIdentity signed with the new key must name user `{user}`"),
            "UpdateAccessKey the old key to Inactive (the next rotation deletes it)".to_owned(),
            "DeleteAccessKey the new key (signed with the current key)".to_owned(),
        ] {
            assert!(summaries.iter().any(|s| s.contains(&want)), "missing {want:?} in {summaries:#?}");
        }
        assert_eq!(w.key().await.1, 1);
        assert_eq!(moto.access_keys(user).await, keys(&[(&key, "Active")]));
    })
}

#[test]
fn the_daemon_keeps_rotating_next_to_a_job_whose_user_has_a_foreign_key() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        let (healthy, stuck) = ("iam-daemon-healthy", "iam-daemon-stuck");
        let healthy_key = moto.create_user(healthy, SELF_SERVICE_POLICY).await;
        let stuck_key = moto.create_user(stuck, SELF_SERVICE_POLICY).await;
        let foreign = moto.create_key(stuck).await;
        works_as(moto, &foreign, stuck).await;
        let server = dev_server().await;
        let every_second =
            |user: &str| moto.access_key_job(user, &format!("aws/{user}"), user).replace("\"1h\"", "\"1s\"");
        let toml = format!("{}\n{}", every_second(healthy), every_second(stuck));
        let (vault, _, _) = jobs(&server, &toml);
        for (user, key) in [(healthy, &healthy_key), (stuck, &stuck_key)] {
            let secret = SecretJson::new(Moto::secret_of(key).to_string());
            vault.kv_write("secret", &format!("aws/{user}"), &secret, None).await.unwrap();
        }
        let daemon = rotator_tests::daemon(&server, &toml, StartOptions::default()).await;
        let api = format!("http://{}", daemon.api_listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(daemon.run(async move {
            let _ = stop_rx.await;
        }));
        // Until the healthy job rotated twice and the other failed (polled,
        // not timed: a loaded machine only makes this take longer).
        let states = store(&vault);
        let mut settled = false;
        for _ in 0..1200 {
            let version = vault.kv_read("secret", &format!("aws/{healthy}")).await.unwrap().and_then(|s| s.version);
            let failed = states.load(stuck).await.unwrap().state.last_error.is_some();
            if version >= Some(3) && failed {
                settled = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(settled, "within 2 minutes the healthy job did not rotate twice or the other never failed");
        let health: serde_json::Value = reqwest::get(format!("{api}/healthz")).await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "ok");
        stop_tx.send(()).unwrap();
        running.await.unwrap().unwrap();

        let state = states.load(stuck).await.unwrap().state;
        let error = state.last_error.unwrap_or_default();
        assert!(error.contains(&format!("second access key `{}`", foreign.id)), "{error}");
        assert!(error.contains("not managed by this job"), "{error}");
        assert!(state.in_progress.is_none(), "a failed create left PENDING: {:?}", state.in_progress);
        assert_eq!(moto.access_keys(stuck).await, keys(&[(&stuck_key, "Active"), (&foreign, "Active")]));
        let secret = vault.kv_read("secret", &format!("aws/{stuck}")).await.unwrap().unwrap();
        assert_eq!(secret.version, Some(1), "the failing job changed its secret");
        let current = vault.kv_read("secret", &format!("aws/{healthy}")).await.unwrap().unwrap().data.fields();
        let text = |k: &str| current[k].as_str().unwrap().to_owned();
        let key = AwsKey { id: text("access_key_id"), secret: text("secret_access_key") };
        works_as(moto, &key, healthy).await;
        let all = moto.access_keys(healthy).await;
        assert!(all.len() == 2 && all.iter().all(|(id, s)| (id == &key.id) == (s == "Active")), "{all:?}");
        assert_secret_keys_hidden(&[&healthy_key, &stuck_key, &foreign, &key], &[error]);
    })
}

/// An IAM stand-in that answers every request with one fault, as a
/// throttled or failing AWS does: the status and the error code of the
/// XML body (none when empty).
async fn faulty_iam(fault: std::sync::Arc<std::sync::Mutex<(u16, &'static str)>>) -> String {
    let answer = move || {
        let (status, code) = *fault.lock().unwrap();
        let body = format!(
            "<ErrorResponse><Error><Code>{code}</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"
        );
        async move { (axum::http::StatusCode::from_u16(status).unwrap(), body) }
    };
    let app = axum::Router::new().fallback(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[test]
fn throttling_and_server_errors_are_transient_and_change_nothing() {
    one_runtime().block_on(async {
        capture();
        let moto = server().await;
        let fault = std::sync::Arc::new(std::sync::Mutex::new((400, "Throttling")));
        let iam = faulty_iam(fault.clone()).await;
        let user = "iam-throttled";
        let (key, w) = setup(moto, user, user, SELF_SERVICE_POLICY, |c| endpoint_at(c, "iam_endpoint", &iam)).await;
        for (status, code) in
            [(400, "Throttling"), (400, "RequestLimitExceeded"), (429, ""), (503, ""), (500, "InternalFailure")]
        {
            *fault.lock().unwrap() = (status, code);
            let err = w.rotate().await.unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.kind(), "transient", "{status} {code}: {msg}");
            assert!(msg.contains("ListAccessKeys signed with the current key failed"), "{msg}");
            let state = store(&w.vault).load(user).await.unwrap().state;
            assert!(state.in_progress.is_none(), "a failed create left PENDING");
            assert_eq!(w.key().await.1, 1, "the failed rotation changed Vault");
        }
        assert_eq!(moto.access_keys(user).await, keys(&[(&key, "Active")]));
        assert_secret_keys_hidden(&[&key], &[]);
    })
}
