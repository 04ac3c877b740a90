//! The HTTP examples (`python-http`, `js-http`) rotate an API key end to end
//! in handle mode: a job of the real daemon protocol against the dev server,
//! with an `http` grant for the loopback [`KeyService`] and
//! `secret_access = "handles"`. The plugin only ever holds handles: the host
//! fills in the current key as the bearer of `POST /keys`, captures the new
//! key from the answer straight into the new secret, and the key service
//! records which real key each request carried.
//!
//! Each test asserts what the key service and Vault hold afterwards, and the
//! exact requests the service saw, so a plugin that skipped a step, revoked
//! the wrong key or sent a handle instead of its value fails.

use rotator_core::crash::all_points;
use rotator_core::plugin::{Access, Capability, HttpGrant, Runtime, RuntimeOptions};
use rotator_core::rotation::{Job, RotateOptions, RotationError};
use rotator_core::secret::SecretJson;
use rotator_core::vault::VaultClient;
use rotator_devserver::DevServer;
use rotator_tests::{dev_server, jobs_in, store};
use serde_json::{Value, json};

use crate::key_service::{KeyService, Seen};
use crate::polyglot::{Example, examples_dir, plugin_logs};

static PYTHON_HTTP: Example = Example::new("python-http");
static JS_HTTP: Example = Example::new("js-http");

/// The key the service starts with (`k-0`) and the job's first secret.
const SEED: &str = "seed-key-7f3a9c0e21b84d5f";

/// Everything one test needs; the runtime lives as long as the job.
struct Rig {
    _server: DevServer,
    service: KeyService,
    vault: VaultClient,
    job: Job,
    _runtime: std::sync::Arc<rotator_core::plugin::Runtime>,
}

/// The job's first secret: the seeded key and its id.
fn first_secret() -> Value {
    json!({"api_key": SEED, "key_id": "k-0"})
}

/// A dev server, a key service seeded with [`SEED`], and a job `id` for
/// `example` whose first secret is `first` (tests run at once and share the
/// plugin log, so each has its own id). With
/// `grant`, the job may send `GET`, `POST` and `DELETE` under `/keys` and
/// `/whoami` to the service's origin; without it, nothing.
async fn rig(example: &Example, id: &str, grant: bool, first: Value) -> Rig {
    let wasm = example.wasm();
    let server = dev_server().await;
    let service = KeyService::start(SEED).await;
    let origin = service.origin();
    let grants = if grant {
        format!(
            "[[jobs.grants]]\nhttp = \"{origin}\"\npaths = [\"/keys\", \"/whoami\"]\nmethods = [\"GET\", \"POST\", \"DELETE\"]\n"
        )
    } else {
        String::new()
    };
    let toml = format!(
        r#"
[[jobs]]
id = "{id}"
plugin = "{wasm}"
secret = {{ mount = "secret", path = "demo/{id}" }}
interval = "1h"
settings = {{ url = "{origin}" }}
secret_access = "handles"
{grants}"#,
        wasm = wasm.display(),
    );
    let (vault, mut jobs, runtime) = jobs_in(&server, "polyglot-http.toml", &toml, &examples_dir());
    let job = jobs.pop().expect("one job");
    let first = SecretJson::new(first.to_string());
    let loc = job.config.secret.as_ref().and_then(|s| s.kv()).cloned().unwrap();
    assert_eq!(vault.kv_write(&loc.mount, &loc.path, &first, Some(0)).await.unwrap(), 1);
    Rig { _server: server, service, vault, job, _runtime: runtime }
}

impl Rig {
    /// The job's secret in Vault: its fields and version.
    async fn secret(&self) -> (Value, u64) {
        let loc = self.job.config.secret.as_ref().and_then(|s| s.kv()).cloned().unwrap();
        let now = self.vault.kv_read(&loc.mount, &loc.path).await.unwrap().unwrap();
        (now.data.fields().clone().into(), now.version.unwrap())
    }
}

fn seen(method: &'static str, path: &str, bearer: &str) -> Seen {
    Seen { method, path: path.to_owned(), bearer: Some(bearer.to_owned()) }
}

/// `describe`: handle mode with `key_id` in clear, HTTP to the origin of
/// `settings.url` (`*`) under `/keys` and `/whoami`, and a schema that
/// requires `url`.
fn describes_itself(example: &Example) {
    let runtime = Runtime::new(RuntimeOptions { max_concurrent_runs: 2, ..RuntimeOptions::default() }).unwrap();
    let plugin = runtime.load_file(&example.wasm(), None).unwrap_or_else(|e| panic!("{e}"));
    let info = plugin.info();
    assert_eq!((info.name.as_str(), info.access), (example.name, Access::Handles));
    assert_eq!(info.visible_fields, ["key_id"]);
    let http = HttpGrant {
        origin: "*".into(),
        paths: vec!["/keys".into(), "/whoami".into()],
        methods: vec!["GET".into(), "POST".into(), "DELETE".into()],
    };
    assert_eq!(info.capabilities, [Capability::Http(http)]);
    assert_eq!(info.settings_schema["required"], json!(["url"]));
}

#[test]
fn python_http_describes_itself() {
    describes_itself(&PYTHON_HTTP);
}

#[test]
fn js_http_describes_itself() {
    describes_itself(&JS_HTTP);
}

/// Three rotations: each mints a key with the current one, proves the new
/// one, revokes the old one, and leaves exactly the new key live and in
/// Vault.
async fn rotates_an_api_key(example: &Example) {
    let logs = plugin_logs();
    let rig = rig(example, example.name, true, first_secret()).await;
    let mut previous = (SEED.to_owned(), "k-0".to_owned());
    for round in 1..=3u64 {
        let before = rig.service.seen().len();
        let report = rig.job.rotate(&store(&rig.vault), "test").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((report.previous_version, report.new_version), (Some(round.into()), Some((round + 1).into())));

        let (fields, version) = rig.secret().await;
        assert_eq!(version, round + 1);
        let live = rig.service.live();
        assert_eq!(live.len(), 1, "exactly the new key is live: {:?}", live.iter().map(|k| &k.id).collect::<Vec<_>>());
        let key = &live[0];
        assert_eq!(key.id, format!("k-{round}"));
        assert!(key.label.starts_with(&format!("rotator:{}:", example.name)), "{}", key.label);
        assert_eq!(fields, json!({"api_key": key.secret, "key_id": key.id}), "the captured key reached Vault");

        // The bearer of each request is the real key the handle stood for.
        let requests = rig.service.seen()[before..].to_vec();
        let expected = [
            seen("GET", "/keys", &previous.0),
            seen("POST", "/keys", &previous.0),
            seen("GET", "/whoami", &key.secret),
            seen("DELETE", &format!("/keys/{}", previous.1), &key.secret),
        ];
        assert_eq!(requests, expected);
        previous = (key.secret.clone(), key.id.clone());
    }

    let lines: Vec<String> =
        logs.lock().unwrap().iter().filter(|l| l.job == example.name).map(|l| l.message.clone()).collect();
    let expected: Vec<String> =
        (1..=3).flat_map(|round| [format!("minted key k-{round}"), format!("revoked key k-{}", round - 1)]).collect();
    assert_eq!(lines, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_http_rotates_an_api_key_with_handles() {
    rotates_an_api_key(&PYTHON_HTTP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_http_rotates_an_api_key_with_handles() {
    rotates_an_api_key(&JS_HTTP).await;
}

/// A first secret holding only `api_key`, as an operator writes it: the
/// plugin asks `GET /whoami` for the key's id (in `create`, and in `finish`
/// to revoke it), and the new secret has both fields.
async fn starts_from_a_bare_key(example: &Example) {
    let rig = rig(example, &format!("{}-bare", example.name), true, json!({"api_key": SEED})).await;
    rig.job.rotate(&store(&rig.vault), "test").await.unwrap_or_else(|e| panic!("{e}"));
    let live = rig.service.live();
    let [key] = live.as_slice() else { panic!("one live key, not {}", live.len()) };
    assert_eq!(rig.secret().await, (json!({"api_key": key.secret, "key_id": "k-1"}), 2));
    let expected = [
        seen("GET", "/whoami", SEED),
        seen("GET", "/keys", SEED),
        seen("POST", "/keys", SEED),
        seen("GET", "/whoami", &key.secret),
        seen("GET", "/whoami", SEED),
        seen("DELETE", "/keys/k-0", &key.secret),
    ];
    assert_eq!(rig.service.seen(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_http_starts_from_a_bare_key() {
    starts_from_a_bare_key(&PYTHON_HTTP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_http_starts_from_a_bare_key() {
    starts_from_a_bare_key(&JS_HTTP).await;
}

/// The service mints a key but refuses it on `GET /whoami`: `test` fails,
/// `rollback` revokes the new key with the current one, and the old key
/// stays live and in Vault.
async fn rolls_back_a_refused_key(example: &Example) {
    let rig = rig(example, &format!("{}-rollback", example.name), true, first_secret()).await;
    rig.service.refuse_minted_keys();
    let error = rig.job.rotate(&store(&rig.vault), "test").await.expect_err("the new key is refused");
    assert!(error.to_string().contains("the service refuses the new key (401)"), "{error}");

    assert_eq!(rig.secret().await, (first_secret(), 1));
    let live: Vec<_> = rig.service.live().into_iter().map(|k| (k.id, k.secret)).collect();
    assert_eq!(live, [("k-0".to_owned(), SEED.to_owned())]);
    let requests = rig.service.seen();
    let minted = requests.get(2).and_then(|r| r.bearer.clone()).expect("a whoami with the new key");
    assert_ne!(minted, SEED);
    let expected = [
        seen("GET", "/keys", SEED),
        seen("POST", "/keys", SEED),
        seen("GET", "/whoami", &minted),
        seen("DELETE", "/keys/k-1", SEED),
    ];
    assert_eq!(requests, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_http_rolls_back_a_key_the_service_refuses() {
    rolls_back_a_refused_key(&PYTHON_HTTP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_http_rolls_back_a_key_the_service_refuses() {
    rolls_back_a_refused_key(&JS_HTTP).await;
}

/// A service that answers `POST /keys` with a `key_id` of `../admin-1`: the
/// plugin refuses it before it can reach a URL path, `create` fails
/// permanently, Vault keeps the first secret, and no request ever went
/// anywhere but the granted paths.
async fn refuses_a_key_id_that_would_steer_a_path(example: &Example) {
    let rig = rig(example, &format!("{}-hostile", example.name), true, first_secret()).await;
    rig.service.mint_hostile_ids();
    let error = rig.job.rotate(&store(&rig.vault), "test").await.expect_err("a hostile key id");
    assert!(error.to_string().contains("POST /keys: the answer has no well-formed `key_id`"), "{error}");
    assert_eq!(rig.secret().await, (first_secret(), 1));
    let paths: Vec<String> = rig.service.seen().into_iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    assert_eq!(paths, ["GET /keys", "POST /keys"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_http_refuses_a_key_id_that_would_steer_a_path() {
    refuses_a_key_id_that_would_steer_a_path(&PYTHON_HTTP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_http_refuses_a_key_id_that_would_steer_a_path() {
    refuses_a_key_id_that_would_steer_a_path(&JS_HTTP).await;
}

/// Deny by default: a job without an `http` grant sends nothing. The
/// plugin's request comes back as the typed `denied` error, which it turns
/// into a permanent failure; the key service sees no request and Vault keeps
/// the first secret.
async fn sends_nothing_without_a_grant(example: &Example) {
    let rig = rig(example, &format!("{}-denied", example.name), false, first_secret()).await;
    let error = rig.job.rotate(&store(&rig.vault), "test").await.expect_err("no grant, no request");
    let text = error.to_string();
    assert!(text.contains("create") && text.to_lowercase().contains("denied"), "{text}");
    assert!(!text.contains(SEED), "the key reached an error: {text}");
    assert_eq!(rig.service.seen(), []);
    assert_eq!(rig.secret().await, (first_secret(), 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn python_http_sends_nothing_without_a_grant() {
    sends_nothing_without_a_grant(&PYTHON_HTTP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_http_sends_nothing_without_a_grant() {
    sends_nothing_without_a_grant(&JS_HTTP).await;
}

/// The process dies at each crash point of a rotation in turn, and the next
/// run finishes (or redoes) it: afterwards the key in Vault is the only live
/// key, so no crash leaves a key minted and forgotten, or revokes the key
/// Vault holds. (A crash between `create` and staging leaves a minted key
/// nothing holds; the next `create` finds it by its label and revokes it.)
async fn survives_a_crash_at_every_point(example: &Example) {
    let rig = rig(example, &format!("{}-crash", example.name), true, first_secret()).await;
    for point in all_points() {
        let options = RotateOptions { interrupt_at: Some(point), ..RotateOptions::new("test") };
        match rig.job.rotate_with(&store(&rig.vault), options).await {
            // Points a successful rotation never passes (rollback) just run through.
            Ok(_) => {}
            Err(RotationError::Interrupted { .. }) => {
                rig.job.rotate(&store(&rig.vault), "test").await.unwrap_or_else(|e| panic!("after {point}: {e}"));
            }
            Err(e) => panic!("{point}: {e}"),
        }
        let (fields, _) = rig.secret().await;
        let live: Vec<_> =
            rig.service.live().into_iter().map(|k| json!({"api_key": k.secret, "key_id": k.id})).collect();
        assert_eq!(live, [fields], "{point}: the key in Vault is the only live key");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_http_survives_a_crash_at_every_point() {
    survives_a_crash_at_every_point(&PYTHON_HTTP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_http_survives_a_crash_at_every_point() {
    survives_a_crash_at_every_point(&JS_HTTP).await;
}
