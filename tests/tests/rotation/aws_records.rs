//! Job state records in AWS Secrets Manager, for a deployment without
//! Vault (moto, authentication on): check-and-set holds under writers
//! racing for the same record (no update is lost), a second write from the
//! same read is refused even with the same content, records are listed for the
//! audit anchors, a record scheduled for deletion is a typed error, and a
//! job rotates through a store that has no Vault client at all.

use rotator_core::rotation::RotationError;
use rotator_core::state::{StateStore, Versioned};
use rotator_core::store::{StoreError, StoreVersion};
use rotator_core::vault::RequestRetry;
use rotator_tests::moto::Moto;
use rotator_tests::{dev_server, jobs};
use serde_json::json;

use crate::aws_store::{REGION, Sm, job_toml};

/// Records under a prefix of their own, as a daemon without Vault keeps them.
fn records(prefix: &str) -> StateStore {
    let moto = Moto::shared();
    StateStore::in_secrets_manager(moto.client(&moto.admin, RequestRetry::default()), prefix, REGION)
}

fn fresh_prefix() -> String {
    format!("rotator-test/{}/", uuid::Uuid::new_v4())
}

/// Add one to the record's rotation count, reading again after each
/// conflict; returns the conflicts met.
async fn increment(store: &StateStore, job: &str) -> u32 {
    let mut conflicts = 0;
    loop {
        let mut v = store.load(job).await.unwrap_or_else(|e| panic!("{e}"));
        v.state.rotations += 1;
        match store.save(job, &mut v).await {
            Ok(()) => return conflicts,
            Err(e) if e.is_conflict() => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writers_racing_for_a_record_never_lose_an_update() {
    let prefix = fresh_prefix();
    let (writers, each) = (6, 5);
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            // One store (one daemon) per writer.
            let store = records(&prefix);
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..each {
                    conflicts += increment(&store, "raced").await;
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let v = records(&prefix).load("raced").await.unwrap();
    assert_eq!(v.state.rotations, writers * each, "every increment is in the record ({conflicts} conflicts met)");

    // Two writers that read the same version: exactly one wins.
    let store = records(&prefix);
    let read = store.load("raced").await.unwrap();
    let (mut a, mut b) = (read.clone(), read.clone());
    a.state.rotations += 100;
    b.state.rotations += 200;
    let (ra, rb) = tokio::join!(store.save("raced", &mut a), store.save("raced", &mut b));
    assert!(ra.is_ok() != rb.is_ok(), "one wins: {ra:?} / {rb:?}");
    let lost = if ra.is_err() { ra } else { rb }.unwrap_err();
    assert!(lost.is_conflict() && !lost.is_transient(), "{lost}");
    let now = store.load("raced").await.unwrap().state.rotations;
    assert!(now == writers * each + 100 || now == writers * each + 200, "{now}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_write_from_the_same_read_is_refused() {
    let prefix = fresh_prefix();
    let store = records(&prefix);
    let empty = store.load("job").await.unwrap();
    assert!(empty.version.is_none(), "no record yet");
    let mut first = Versioned { state: empty.state.clone(), version: None };
    first.state.rotations = 1;
    let mut twin = first.clone();
    store.save("job", &mut first).await.unwrap();
    // A second writer from the same read, even with the same new state, is
    // refused (each write carries its own id, so AWS cannot take it for a
    // retry of the first), and so is one with other content.
    assert!(store.save("job", &mut twin).await.unwrap_err().is_conflict());
    let mut other = Versioned { state: empty.state, version: None };
    other.state.rotations = 7;
    assert!(store.save("job", &mut other).await.unwrap_err().is_conflict());

    let mut now = store.load("job").await.unwrap();
    assert_eq!((now.state.rotations, &now.version), (1, &first.version));
    let mut stale = now.clone();
    now.state.rotations = 2;
    store.save("job", &mut now).await.unwrap();
    stale.state.rotations = 3;
    let err = store.save("job", &mut stale).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(err.to_string().contains(&format!("aws:{REGION}:{prefix}job")), "names the record: {err}");
    assert_eq!(store.load("job").await.unwrap().state.rotations, 2, "the stale write changed nothing");

    // In Secrets Manager: the record is the current version, its
    // predecessor AWSPREVIOUS, each version id the token rotator derived.
    let sm = Sm::new(Moto::shared());
    let name = format!("{prefix}job");
    let Some(StoreVersion::Id(current)) = now.version else { panic!("{:?}", now.version) };
    assert_eq!(sm.holder(&name, "AWSCURRENT").await, [current]);
    let Some(StoreVersion::Id(previous)) = first.version else { panic!() };
    assert_eq!(sm.holder(&name, "AWSPREVIOUS").await, [previous]);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_listed_and_a_deleted_record_is_a_typed_error() {
    let prefix = fresh_prefix();
    let store = records(&prefix);
    for job in ["alpha", "beta"] {
        store.save(job, &mut Versioned::default()).await.unwrap();
    }
    // Names that only look alike are not records of this prefix.
    let sm = Sm::new(Moto::shared());
    sm.create(&format!("{prefix}nested/gamma"), json!({})).await;
    sm.create(&format!("{}x", prefix.trim_end_matches('/')), json!({})).await;
    let mut listed = store.list_jobs().await.unwrap().expect("listing is allowed");
    listed.sort();
    assert_eq!(listed, ["alpha", "beta"]);
    let anchors = rotator_core::audit::read_anchors(&store, &[]).await.unwrap();
    assert!(anchors.listed && anchors.anchors.is_empty(), "no rotation wrote an anchor yet");

    sm.call("DeleteSecret", json!({ "SecretId": format!("{prefix}beta"), "RecoveryWindowInDays": 7 })).await;
    let err = store.load("beta").await.unwrap_err();
    assert!(!err.is_conflict() && !err.is_transient(), "{err}");
    assert!(err.to_string().contains(&format!("{prefix}beta")), "{err}");
    assert!(store.load("alpha").await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_rotates_through_a_store_without_vault() {
    let (moto, server) = (Moto::shared(), dev_server().await);
    let sm = Sm::new(moto);
    let name = format!("no-vault/{}", uuid::Uuid::new_v4());
    sm.create(&name, json!({ "password": "initial-password" })).await;
    let toml = job_toml("aws-only", &name)
        + "\n[[jobs]]\nid = \"kv-job\"\nplugin = \"kv-random\"\nsecret = { path = \"app/x\" }\ninterval = \"1h\"\n\
           settings = { field = \"password\" }\n";
    // The dev server only loads the plugins: the store has no Vault client.
    let (_vault, jobs, _rt) = jobs(&server, &toml);
    let store = records(&fresh_prefix());
    assert!(store.vault.is_none());
    for n in 1..=2 {
        let report = jobs[0].rotate(&store, "test").await.unwrap_or_else(|e| panic!("{e}"));
        let (_, current) = sm.current(&name).await;
        assert_eq!(report.new_version, Some(StoreVersion::Id(current)));
        let state = store.load("aws-only").await.unwrap().state;
        assert_eq!((state.rotations, state.in_progress.is_none()), (n, true));
        assert!(sm.holder(&name, "AWSPENDING").await.is_empty());
    }
    // A job whose secret is in Vault KV cannot run here: a typed refusal.
    let err = jobs[1].rotate(&store, "test").await.unwrap_err();
    match &err {
        RotationError::Store { source, .. } if matches!(source.as_ref(), StoreError::Refused { .. }) => {
            assert!(err.to_string().contains("runs without Vault"), "{err}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn job_definitions_are_kept_replaced_listed_and_deleted_beside_the_records() {
    let store = records(&fresh_prefix());
    store.save_definition("a", &json!({ "id": "a", "n": 1 })).await.unwrap();
    store.save_definition("a", &json!({ "id": "a", "n": 2 })).await.unwrap();
    store.save_definition("b", &json!({ "id": "b" })).await.unwrap();
    store.save("rec", &mut Versioned::default()).await.unwrap();
    let mut kept = store.definitions().await.unwrap();
    kept.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(kept, [("a".to_owned(), json!({ "id": "a", "n": 2 })), ("b".to_owned(), json!({ "id": "b" }))]);
    // Definitions are not records, and records are not definitions.
    assert_eq!(store.list_jobs().await.unwrap().unwrap(), ["rec"]);
    store.delete_definition("b").await.unwrap();
    store.delete_definition("b").await.unwrap();
    assert_eq!(store.definitions().await.unwrap().len(), 1);
}
