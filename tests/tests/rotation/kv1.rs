//! KV version 1 secrets rotate (issue 16), against the dev server's v1
//! engine: versions are keyed fingerprints that never show the value, a
//! value written by someone else between staging and promotion is detected
//! and not overwritten, and a rotation interrupted at every crash point is
//! resumed to the same end (PENDING gone, the value promoted once).

use rotator_core::crash::{Action, Point, all_points};
use rotator_core::rotation::{RotateOptions, RotationError};
use rotator_core::secret::SecretJson;
use rotator_core::store::StoreVersion;
use rotator_core::store::kv1::{FINGERPRINT_PREFIX, FingerprintKey, fingerprint};
use rotator_core::vault::VaultClient;
use rotator_tests::{dev_server, jobs, store};
use serde_json::{Value, json};

const JOB: &str = "[[jobs]]\nid = \"legacy\"\nplugin = \"kv-random\"\nsecret = { mount = \"kv1\", path = \"app/db\" }\ninterval = \"1h\"\nsettings = { field = \"password\" }\n";

/// A KV v1 mount at `kv1/` holding `app/db` = `value`.
async fn kv1(vault: &VaultClient, value: Value) {
    let mount = json!({ "type": "kv", "options": { "version": "1" } }).to_string();
    vault.request("POST", "sys/mounts/kv1", Some(mount)).await.unwrap();
    vault.kv_write("kv1", "app/db", &SecretJson::new(value.to_string()), None).await.unwrap();
}

async fn value(vault: &VaultClient) -> SecretJson {
    vault.kv_read("kv1", "app/db").await.unwrap().expect("the v1 secret").data
}

/// The fingerprint of `data` under the key kept beside the job states.
async fn fingerprint_of(vault: &VaultClient, data: &SecretJson) -> StoreVersion {
    let key = FingerprintKey::beside_state(vault.clone(), "secret", "rotator/state").load().await.unwrap();
    fingerprint(&key, data)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kv1_secret_rotates_and_its_versions_are_fingerprints() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    kv1(&vault, json!({ "password": "hand-set-weak", "user": "app" })).await;
    let store = store(&vault);

    let first = jobs[0].rotate(&store, "test").await.unwrap();
    let now = value(&vault).await;
    assert_ne!(now.fields()["password"], json!("hand-set-weak"));
    assert_eq!(now.fields()["user"], json!("app"), "other fields are kept");
    assert_eq!(first.value.as_ref().unwrap().fields(), now.fields(), "the report's value is what v1 holds");
    let initial = SecretJson::new(json!({ "password": "hand-set-weak", "user": "app" }).to_string());
    assert_eq!(first.previous_version, Some(fingerprint_of(&vault, &initial).await));
    assert_eq!(first.new_version, Some(fingerprint_of(&vault, &now).await));
    for v in [&first.previous_version, &first.new_version] {
        let text = v.as_ref().unwrap().to_string();
        assert!(text.starts_with(FINGERPRINT_PREFIX) && !text.contains("hand-set-weak"), "{text}");
    }

    // The next rotation starts from the version the first one made.
    let second = jobs[0].rotate(&store, "test").await.unwrap();
    assert_eq!(second.previous_version, first.new_version);
    assert_ne!(value(&vault).await.fields(), now.fields());
    let state = store.load("legacy").await.unwrap().state;
    assert!(state.in_progress.is_none());
    assert_eq!(state.rotations, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outside_write_before_promotion_is_detected_and_not_overwritten() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    kv1(&vault, json!({ "password": "original" })).await;
    let store = store(&vault);
    let options = RotateOptions { interrupt_at: Some(Point::before(Action::Promote)), ..RotateOptions::new("test") };
    assert!(matches!(jobs[0].rotate_with(&store, options).await, Err(RotationError::Interrupted { .. })));
    assert!(store.load("legacy").await.unwrap().state.in_progress.is_some(), "staged in the record");
    let outside = SecretJson::new(json!({ "password": "written-by-someone-else" }).to_string());
    vault.kv_write("kv1", "app/db", &outside, None).await.unwrap();

    let err = jobs[0].rotate(&store, "test").await.unwrap_err();
    assert!(err.to_string().contains("kv1/app/db was changed by someone else"), "{err}");
    assert_eq!(value(&vault).await.fields(), outside.fields(), "the outside write was overwritten");
    let state = store.load("legacy").await.unwrap().state;
    assert!(state.in_progress.is_none(), "PENDING left behind");
    assert!(state.last_error.unwrap().contains("changed by someone else"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kv1_rotation_interrupted_anywhere_is_resumed_to_the_same_end() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    kv1(&vault, json!({ "password": "start" })).await;
    let store = store(&vault);
    for point in all_points() {
        let before = value(&vault).await;
        let options = RotateOptions { interrupt_at: Some(point), ..RotateOptions::new("test") };
        let report = match jobs[0].rotate_with(&store, options).await {
            Ok(report) => report,
            Err(RotationError::Interrupted { .. }) => {
                let staged = store.load("legacy").await.unwrap().state.in_progress.map(|p| p.id);
                match jobs[0].rotate(&store, "test").await {
                    // Interrupted after its final record: a new rotation.
                    Ok(report) if staged.is_none() => report,
                    Ok(report) => {
                        assert_eq!(Some(&report.rotation_id), staged.as_ref(), "{point}: started afresh");
                        report
                    }
                    Err(e) => panic!("{point}: {e}"),
                }
            }
            Err(e) => panic!("{point}: {e}"),
        };
        let now = value(&vault).await;
        assert_ne!(now.fields(), before.fields(), "{point}: nothing promoted");
        assert_eq!(report.new_version, Some(fingerprint_of(&vault, &now).await), "{point}");
        assert!(store.load("legacy").await.unwrap().state.in_progress.is_none(), "{point}: PENDING left behind");
    }
}
