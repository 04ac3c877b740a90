//! WIT versions side by side: a plugin built against the frozen
//! `rotator:plugin@0.1.0` folder (the `legacy` fixture, no SDK) and a 0.2.0
//! built-in rotate in one daemon, and a component for a version the host
//! does not know is refused with an error naming both versions.

use std::collections::HashSet;
use std::path::Path;

use rotator_core::config;
use rotator_core::secret::SecretJson;
use rotator_daemon::setup;
use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::{dev_server, fixture, jobs};
use serde_json::{Value, json};

/// Two jobs the scheduler leaves alone (`enabled = false`): the test
/// rotates them through the API, so nothing races it.
fn two_versions() -> String {
    format!(
        r#"
[[jobs]]
id = "legacy"
plugin = "{}"
secret = {{ path = "versions/legacy" }}
interval = "1h"
enabled = false

[[jobs]]
id = "modern"
plugin = "kv-random"
secret = {{ path = "versions/modern" }}
interval = "1h"
enabled = false
settings = {{ field = "password", length = 24 }}
"#,
        fixture("fixture_legacy")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_plugin_and_a_0_2_plugin_rotate_side_by_side_in_one_daemon() {
    let server = dev_server().await;
    let toml = two_versions();
    let (vault, loaded, _rt) = jobs(&server, &toml);
    let versions: Vec<(&str, &str)> = loaded.iter().map(|j| (j.config.id.as_str(), j.plugin.wit_version())).collect();
    assert_eq!(versions, [("legacy", "0.1.0"), ("modern", "0.2.0")]);
    let seed = SecretJson::new(json!({"owner": "team-a", "value": "initial-value"}).to_string());
    vault.kv_write("secret", "versions/legacy", &seed, Some(0)).await.unwrap();

    let api = Api::start_with(&server, ApiSetup { jobs: toml, ..ApiSetup::default() }).await;
    let mut seen = HashSet::new();
    for round in 1..=3u64 {
        // Interleaved, so each version's adapter runs between the other's.
        let legacy = api.expect(200, "POST", "/jobs/legacy/rotate", None).await;
        let modern = api.expect(200, "POST", "/jobs/modern/rotate", None).await;
        assert_eq!(legacy["plugin"].as_str().map(|p| p.starts_with("legacy@0.0.1")), Some(true), "{legacy}");
        assert_eq!(modern["plugin"].as_str().map(|p| p.starts_with("kv-random@")), Some(true), "{modern}");
        assert_eq!((legacy["version"].clone(), modern["version"].clone()), (json!(round + 1), json!(round)));

        let legacy = vault.kv_read("secret", "versions/legacy").await.unwrap().unwrap().data.fields();
        assert_eq!(legacy["owner"], "team-a", "the 0.1.0 plugin keeps the other fields");
        let value = legacy["value"].as_str().unwrap().to_owned();
        assert!(value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()), "{value}");
        let modern = vault.kv_read("secret", "versions/modern").await.unwrap().unwrap().data.fields();
        let password = modern["password"].as_str().unwrap().to_owned();
        assert!(password.len() == 24 && password.chars().all(|c| c.is_ascii_alphanumeric()), "{password}");
        assert!(seen.insert(value) && seen.insert(password), "a value repeated");
    }
    for id in ["legacy", "modern"] {
        let job = api.expect(200, "GET", &format!("/jobs/{id}"), None).await;
        assert_eq!(job["rotations"], 3, "{job}");
        assert_eq!(job["last_error"], Value::Null, "{job}");
    }
    api.stop().await;
}

#[test]
fn a_component_for_an_unknown_wit_version_is_refused_naming_both_versions() {
    let toml = format!(
        "[[jobs]]\nid = \"future\"\nplugin = \"{}\"\ninterval = \"1h\"\n\n{}",
        fixture("fixture_future"),
        // The good jobs beside it still load: the error is the one job's.
        two_versions()
    );
    let cfg = config::parse("test.toml", &toml, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let runtime = setup::runtime(&cfg).unwrap();
    let Err(err) = setup::load_jobs(&cfg, &runtime) else { panic!("the daemon loaded a plugin of an unknown version") };
    let msg = err.to_string();
    for want in [
        "it exports `rotator:plugin/rotator@0.9.0`, a WIT version this rotator does not know",
        "0.1.0",
        "0.2.0",
        "`rotator:plugin/rotator@0.2.0`",
        "`rotator:plugin/rotator@0.1.0`",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
    assert!(!msg.contains("job `legacy`") && !msg.contains("job `modern`"), "only the future job fails:\n{msg}");
}
