//! One canonical path: what a grant allows is exactly what reaches Vault.
//!
//! A plugin granted `secret/data/allowed/*` once read and wrote anywhere by
//! smuggling dot segments, encoded slashes or a query through the path text
//! (the grant matched the raw text, the HTTP stack normalised it). Here:
//!
//! - a property over adversarial paths (fixed seed and a random one, 10,000
//!   cases each), without a server: a path the grant allows becomes a URL
//!   that a server decodes to exactly that path, and a path whose naive URL
//!   would land outside the grant is refused;
//! - the known bypass shapes (`plugins/fixtures/smuggler/corpus.jsonl`),
//!   always run: first without a server, then end to end through the
//!   hostile fixture plugin against the dev server, whose request log shows
//!   what arrived;
//! - the same property end to end: generated batches of calls through the
//!   fixture, every request the dev server saw checked against the grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use rotator_core::plugin::{Grants, Operation, Plugin, RunConfig, RunLimits, Runtime, RuntimeOptions, StepContext};
use rotator_core::plugin::{VaultBridge, VaultGrant};
use rotator_core::vault::{Target, VaultClient, VaultOptions, VaultPath, api_url};
use rotator_devserver::{DevServer, SeenRequest};
use rotator_test_artifacts::build_artifact;
use rotator_tests::{ROOT, dev_server};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::runtime::Handle;

/// The one grant every test here gives the plugin.
const GRANT: &str = "secret/data/allowed/*";
const BASE: &str = "http://127.0.0.1:8200";
/// The fixed seed; the second run of each property draws its own.
const SEED: [u8; 32] = *b"rotator issue 9: one canonical p";

fn grants() -> Grants {
    let grant = VaultGrant { path: GRANT.into(), operations: vec![Operation::Read, Operation::Write] };
    Grants { vault: vec![grant], ..Grants::default() }
}

/// The known bypass shapes and legitimate calls: `[function, method or
/// mount, path, expected]`, shared with the fixture that tries them.
fn corpus() -> Vec<[String; 4]> {
    include_str!("../../../plugins/fixtures/smuggler/corpus.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a corpus line is [function, arg, path, expected]"))
        .collect()
}

/// Run `test` on `cases` cases of `strategy` twice: from [`SEED`] and from a
/// random seed (printed, with how to replay it, if it fails).
/// `ROTATOR_PROPTEST_SEED=<64 hex>` replaces the random seed.
fn run_seeded<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let random = match std::env::var("ROTATOR_PROPTEST_SEED") {
        Ok(hex) => parse_seed(hex.trim()).expect("ROTATOR_PROPTEST_SEED is 64 hex digits"),
        Err(_) => random_seed(),
    };
    for seed in [SEED, random] {
        let config = Config { cases, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        if let Err(e) = runner.run(&strategy, &test) {
            let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            panic!("{e}\nreplay with ROTATOR_PROPTEST_SEED={hex}");
        }
    }
}

fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
    bytes?.try_into().ok()
}

/// 32 bytes from the process's randomly keyed hasher (no extra crate).
fn random_seed() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

/// One piece of an adversarial path: names, dot and encoding tricks,
/// characters URLs treat specially, unicode, and arbitrary text.
fn piece() -> impl Strategy<Value = String> {
    let names = ["secret", "data", "allowed", "sys", "policy", "mounts", "auth", "token", "create", "x", "v1"];
    let dots = [
        ".", "..", "...", "%2e", "%2E", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2f", "%2F", "%5c", "%5C", "%25", "%252e",
        "%3f", "%23", "%00", "%20", "%", ".\t.", ".\n.",
    ];
    let specials = [
        "?",
        "#",
        "\\",
        "?list=true",
        "#x",
        "\0",
        "\t",
        "\n",
        "\r",
        "\u{7f}",
        "\u{85}",
        "\u{202e}",
        "é",
        "日本",
        "\u{ff0e}\u{ff0e}",
        "\u{2215}",
        "//",
        "http:",
        "http://127.0.0.1:1",
        ":",
        " ",
    ];
    prop_oneof![
        4 => prop::sample::select(names.to_vec()).prop_map(String::from),
        3 => prop::sample::select(dots.to_vec()).prop_map(String::from),
        2 => prop::sample::select(specials.to_vec()).prop_map(String::from),
        1 => "[a-z.%/?#\\\\]{1,6}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

/// A raw path: a prefix (often inside the grant, the classic start of a
/// bypass), then pieces joined by `/`, nothing, `//` or `\`.
fn raw_path(prefixes: &'static [&'static str]) -> impl Strategy<Value = String> {
    let separators = ["/", "/", "/", "", "//", "\\"];
    let parts = prop::collection::vec((piece(), prop::sample::select(separators.to_vec())), 0..6);
    (prop::sample::select(prefixes.to_vec()), parts, any::<bool>()).prop_map(|(prefix, parts, trail)| {
        let mut s = prefix.to_owned();
        for (i, (piece, sep)) in parts.iter().enumerate() {
            s.push_str(piece);
            if trail || i + 1 < parts.len() {
                s.push_str(sep);
            }
        }
        s
    })
}

/// A path that is plainly what it says (names, spaces inside, unicode)
/// under one of `prefixes`: most of these are granted, so the allowing side
/// of the property is exercised as much as the refusing side.
fn plain_path(prefixes: &'static [&'static str]) -> impl Strategy<Value = String> {
    let names = prop_oneof![
        4 => "[a-z0-9_-]{1,8}",
        1 => prop::sample::select(vec!["a b", "é", "日本", "x:y", "...", "a+b", "*", "\u{ff0e}\u{ff0e}", "a\u{a0}b"])
            .prop_map(String::from),
    ];
    (prop::sample::select(prefixes.to_vec()), prop::collection::vec(names, 1..4))
        .prop_map(|(prefix, names)| format!("{prefix}{}", names.join("/")))
}

/// Half plain, half adversarial.
fn any_path(prefixes: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![plain_path(prefixes), raw_path(prefixes)]
}

const REQUEST_PREFIXES: &[&str] =
    &["secret/data/allowed/", "secret/data/allowed/", "", "/", "/v1/secret/data/allowed/", "secret/data/", BASE];

/// What a server makes of a URL's path: percent-decoded, after `/v1/`.
fn server_view(url_path: &str) -> Option<String> {
    let rest = url_path.strip_prefix("/v1/")?;
    let bytes = rest.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => (out.push(b), i += 3),
            _ => (out.push(bytes[i]), i += 1),
        };
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Where a server goes for a decoded path: `//`, `.` and `..` resolved the
/// way Vault's HTTP layer (Go's `path.Clean`, by redirect) resolves them.
fn resolve(seen: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    for segment in seen.split('/') {
        match segment {
            "" | "." => {}
            ".." => drop(stack.pop()),
            s => stack.push(s),
        }
    }
    stack.join("/")
}

/// Whether a server receiving `url` acts on a path inside the grant, for
/// `op`, with nothing else riding along (no query, no fragment, no other
/// host, no `\` that a proxy might read as `/`).
fn lands_inside(url: &reqwest::Url, op: Operation) -> bool {
    let Some(seen) = server_view(url.path()) else { return false };
    url.host_str() == Some("127.0.0.1")
        && url.query().is_none()
        && url.fragment().is_none()
        && !seen.contains('\\')
        && grants().allows(op, &resolve(&seen))
}

/// The sandbox's decision for a raw path: the canonical path if the grant
/// allows `op` on it, `None` if it is refused.
fn decide(raw: &str, op: Operation) -> Option<VaultPath> {
    VaultPath::parse(raw).ok().filter(|p| grants().allows_path(op, p))
}

/// The property for one call, without a server. `decision` is what the
/// sandbox decided; `naive` the text the old code pasted into the URL.
fn granted_means_arrives_inside(decision: Option<VaultPath>, naive: &str, op: Operation) -> Result<(), TestCaseError> {
    let base = reqwest::Url::parse(BASE).unwrap();
    if let Some(path) = &decision {
        let url = api_url(&base, &Target { path: path.clone(), query: None });
        // reqwest sends the URL as serialized; parsing it again changes nothing.
        let wire = reqwest::Url::parse(url.as_str()).unwrap();
        prop_assert_eq!(wire.as_str(), url.as_str());
        let seen = server_view(wire.path());
        // Exactly the canonical text: nothing left for a server to resolve.
        prop_assert_eq!(seen.as_deref(), Some(path.as_str()), "{:?} arrives as itself", naive);
        prop_assert!(lands_inside(&wire, op), "{naive:?} allowed but {wire} lands outside {GRANT}");
    }
    // Had the raw text been pasted into the URL (the old way), where would
    // a server have gone? Outside the grant means it must be refused.
    if let Ok(url) = reqwest::Url::parse(&format!("{BASE}/v1/{naive}"))
        && !lands_inside(&url, op)
    {
        prop_assert!(decision.is_none(), "{naive:?} naively reaches {url}, outside {GRANT}, yet was allowed");
    }
    Ok(())
}

#[test]
fn property_a_granted_path_is_exactly_the_path_a_server_sees() {
    let ops = prop::sample::select(vec![Operation::Read, Operation::Write]);
    let (cases, allowed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    run_seeded(10_000, (any_path(REQUEST_PREFIXES), ops), |(raw, op)| {
        let decision = decide(&raw, op);
        cases.fetch_add(1, Ordering::Relaxed);
        allowed.fetch_add(usize::from(decision.is_some()), Ordering::Relaxed);
        granted_means_arrives_inside(decision, &raw, op)
    });
    // Not vacuous: both sides of the property were exercised.
    let (cases, allowed) = (cases.into_inner(), allowed.into_inner());
    assert!(allowed * 10 > cases && (cases - allowed) * 10 > cases, "{allowed} of {cases} allowed");
}

#[test]
fn the_known_bypass_shapes_never_leave_the_grant() {
    let rows = corpus();
    assert!(rows.len() >= 40, "the corpus is loaded");
    for [function, arg, path, expected] in &rows {
        let op = match function.as_str() {
            "request" => Operation::from_method(arg),
            "kv-read" => Some(Operation::Read),
            _ => Some(Operation::Write),
        };
        let Some(op) = op else { continue }; // an unknown method is refused outright
        let decision = api_path(function, arg, path).filter(|p| grants().allows_path(op, p));
        // The old code's text: the path as given, or `<mount>/data/<path>`
        // with slashes trimmed.
        let naive = match function.as_str() {
            "request" => path.trim_start_matches('/').trim_start_matches("v1/").to_owned(),
            _ => format!("{}/data/{}", arg.trim_matches('/'), path.trim_matches('/')),
        };
        if expected == "allowed" {
            assert!(decision.is_some(), "a legitimate call is refused: {function} {arg} {path:?}");
        }
        granted_means_arrives_inside(decision, &naive, op).unwrap_or_else(|e| panic!("{function} {arg} {path:?}: {e}"));
    }
}

fn runtime() -> Arc<Runtime> {
    Runtime::new(RuntimeOptions { max_concurrent_runs: 2, ..Default::default() }).expect("runtime")
}

/// The fixture granted only [`GRANT`], talking to `server`.
struct Smuggler {
    plugin: Plugin,
    config: RunConfig,
}

impl Smuggler {
    fn new(server: &DevServer) -> Self {
        let client = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
        let plugin = runtime().load_file(&build_artifact("fixture_smuggler"), None).unwrap();
        let config = RunConfig {
            limits: RunLimits::default(),
            grants: Arc::new(grants()),
            vault: Some(VaultBridge { client, handle: Handle::current() }),
            ..RunConfig::default()
        };
        Self { plugin, config }
    }

    /// Run `create` with `settings` (on this blocking thread): the outcome
    /// of each attempt.
    fn attempt(&self, settings: Value) -> Vec<String> {
        let mut run = self.plugin.start("smuggler", self.config.clone()).unwrap();
        let ctx =
            StepContext { job_id: "smuggler".into(), rotation_id: "r1".into(), settings, current: None, attempt: 1 };
        let created = run.create(&ctx).expect("the fixture reports, it does not fail");
        let report: Value = serde_json::from_str(created.expose()).unwrap();
        report["outcomes"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_owned()).collect()
    }
}

/// The API path a fixture attempt names, as the sandbox parses it.
fn api_path(function: &str, arg: &str, path: &str) -> Option<VaultPath> {
    match function {
        "request" => {
            VaultPath::parse(path.strip_prefix("/v1/").or_else(|| path.strip_prefix("v1/")).unwrap_or(path)).ok()
        }
        _ => {
            let (mount, path) = (VaultPath::parse(arg).ok()?, VaultPath::parse(path).ok()?);
            Some(mount.child("data").join(&path))
        }
    }
}

/// Check what the dev server saw against what the plugin was told: every
/// request inside the grant (bar the host's KV version lookups), one per
/// call that was not denied, none for a denied one, in order.
fn check_arrivals(attempts: &[[String; 3]], outcomes: &[String], seen: &[SeenRequest]) -> Result<(), String> {
    if outcomes.len() != attempts.len() {
        return Err(format!("{} outcomes for {} attempts", outcomes.len(), attempts.len()));
    }
    let mut expected = Vec::new();
    for ([function, arg, path], outcome) in attempts.iter().zip(outcomes) {
        if outcome.starts_with("denied") {
            continue;
        }
        let api = api_path(function, arg, path).ok_or_else(|| format!("{path:?} did not parse, yet got {outcome}"))?;
        expected.push(api.as_str().to_owned());
    }
    // The host asks a mount's KV version (and type) before a KV call: for
    // mounts the calls named, nothing else.
    let lookups: Vec<String> = attempts
        .iter()
        .filter(|[function, ..]| function != "request")
        .filter_map(|[_, mount, _]| VaultPath::parse(mount).ok())
        .map(|m| format!("sys/internal/ui/mounts/{m}"))
        .collect();
    let mut arrived = Vec::new();
    for r in seen {
        if r.method == "GET" && r.query.is_none() && lookups.contains(&r.path) {
            continue;
        }
        let op = Operation::from_method(&r.method).ok_or_else(|| format!("method {}", r.method))?;
        let url = reqwest::Url::parse(&format!("{BASE}{}", r.raw_path)).map_err(|e| e.to_string())?;
        if r.query.is_some() || !lands_inside(&url, op) {
            return Err(format!(
                "{} {:?} (raw {:?}, query {:?}) reached Vault outside {GRANT}",
                r.method, r.path, r.raw_path, r.query
            ));
        }
        arrived.push(r.path.clone());
    }
    if arrived != expected {
        return Err(format!("Vault saw {arrived:?}; the calls not denied named {expected:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hostile_fixture_is_denied_every_bypass_and_keeps_its_grant() {
    let server = dev_server().await;
    server.start_request_log();
    let smuggler = Smuggler::new(&server);
    let rows = corpus();
    let outcomes = tokio::task::spawn_blocking(move || smuggler.attempt(json!({ "reasons": true }))).await.unwrap();
    let seen = server.take_request_log();
    let attempts: Vec<[String; 3]> = rows.iter().map(|[f, a, p, _]| [f.clone(), a.clone(), p.clone()]).collect();
    check_arrivals(&attempts, &outcomes, &seen).unwrap();
    for ([function, arg, path, expected], outcome) in rows.iter().zip(&outcomes) {
        let case = format!("{function} {arg} {path:?}: {outcome}");
        match expected.as_str() {
            "denied" => {
                let why = outcome.strip_prefix("denied:").unwrap_or_else(|| panic!("not denied: {case}"));
                let named = ["is not granted", "refused:", "is not a KV mount", "is not supported"];
                assert!(named.iter().any(|n| why.contains(n)), "the denial names no reason: {case}");
            }
            _ => assert!(outcome == "ok" || outcome == "status:404", "a legitimate call failed: {case}"),
        }
    }
    // The legitimate writes landed where granted, and only there.
    let http = rotator_tests::http_client(std::time::Duration::from_secs(10));
    let (_, policies) = rotator_tests::call(&http, &server, Some(ROOT), "LIST", "sys/policy", None).await;
    assert_eq!(policies["data"]["keys"], json!(["default", "root"]), "no policy was written");
    let (status, written) =
        rotator_tests::call(&http, &server, Some(ROOT), "GET", "secret/data/allowed/written", None).await;
    assert_eq!((status, &written["data"]["data"]), (200, &json!({"smuggled": "yes"})));
}

/// One generated fixture call: `[function, method or mount, path]`.
fn fixture_call() -> impl Strategy<Value = [String; 3]> {
    const KV_PREFIXES: &[&str] = &["allowed/", "allowed/", "", "/", "data/allowed/"];
    let mounts = prop_oneof![
        4 => Just("secret".to_owned()),
        1 => raw_path(&["secret", "", "secret/data/allowed", "sys", "cubbyhole"]),
    ];
    let method = prop::sample::select(vec!["GET", "POST", "PUT"]).prop_map(String::from);
    prop_oneof![
        2 => (method, any_path(REQUEST_PREFIXES)).prop_map(|(m, p)| ["request".to_owned(), m, p]),
        1 => (mounts.clone(), any_path(KV_PREFIXES)).prop_map(|(m, p)| ["kv-read".to_owned(), m, p]),
        1 => (mounts, any_path(KV_PREFIXES)).prop_map(|(m, p)| ["kv-write".to_owned(), m, p]),
    ]
}

/// Cases per seed of the end-to-end property: each is one fresh plugin
/// instance making up to 24 calls against the live dev server.
const E2E_CASES: u32 = 1_000;

#[tokio::test(flavor = "multi_thread")]
async fn property_end_to_end_only_granted_paths_reach_the_dev_server() {
    let server = Arc::new(dev_server().await);
    server.start_request_log();
    let smuggler = Smuggler::new(&server);
    let log = server.clone();
    let (calls, denied) = tokio::task::spawn_blocking(move || {
        let (calls, denied) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let batches = prop::collection::vec(fixture_call(), 1..24);
        run_seeded(E2E_CASES, batches, |attempts| {
            log.take_request_log();
            let outcomes = smuggler.attempt(json!({ "attempts": attempts }));
            let seen = log.take_request_log();
            check_arrivals(&attempts, &outcomes, &seen).map_err(TestCaseError::fail)?;
            calls.fetch_add(outcomes.len(), Ordering::Relaxed);
            denied.fetch_add(outcomes.iter().filter(|o| o.starts_with("denied")).count(), Ordering::Relaxed);
            // A call that is plainly inside the grant still goes through.
            for ([function, arg, path], outcome) in attempts.iter().zip(&outcomes) {
                let plain = function == "request" && VaultPath::parse(path).is_ok_and(|p| p.as_str() == path);
                let op = Operation::from_method(arg).unwrap_or(Operation::Read);
                if plain && grants().allows(op, path) {
                    prop_assert!(!outcome.starts_with("denied"), "{arg} {path:?} is granted, yet {outcome}");
                }
            }
            Ok(())
        });
        (calls.into_inner(), denied.into_inner())
    })
    .await
    .unwrap();
    // Not vacuous: both sides of the property were exercised.
    eprintln!("{calls} generated calls, {denied} denied, {} reached the dev server", calls - denied);
    assert!(denied * 10 > calls && (calls - denied) * 10 > calls, "{denied} of {calls} denied");
}
