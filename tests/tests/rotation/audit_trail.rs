//! A rotation leaves a verifiable audit trail and counts in the metrics,
//! and neither holds a secret value.

use std::sync::Arc;

use rotator_core::audit::{AuditLog, AuditRecord, verify};
use rotator_core::metrics::Metrics;
use rotator_core::rotation::{Observer, RotateOptions};
use rotator_tests::{dev_server, jobs, store};

#[tokio::test(flavor = "multi_thread")]
async fn every_step_is_audited_in_a_chain_and_counted_without_values() {
    let server = dev_server().await;
    let toml = "[[jobs]]\nid = \"app\"\nplugin = \"kv-random\"\nsecret = { path = \"audited/app\" }\ninterval = \"1h\"\nsettings = { field = \"password\" }\n";
    let (vault, jobs, _rt) = jobs(&server, toml);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let audit = AuditLog::open(&path).unwrap();
    let metrics = Metrics::new();
    let observers: Vec<Arc<dyn Observer>> = vec![Arc::new(audit), Arc::new(metrics.clone())];
    let store = store(&vault);
    for _ in 0..2 {
        let options = RotateOptions { observer: &observers, ..RotateOptions::new("api:test") };
        jobs[0].rotate_with(&store, options).await.unwrap();
    }

    let summary = verify(&path).unwrap();
    assert_eq!(summary.records, 14, "7 records per rotation");
    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<AuditRecord> = text.lines().map(|l| AuditRecord::parse_line(l.as_bytes()).unwrap()).collect();
    let steps: Vec<String> =
        records[..7].iter().map(|r| serde_json::to_value(r.event.step).unwrap().as_str().unwrap().to_owned()).collect();
    assert_eq!(steps, ["create", "stage", "set", "test", "promote", "finish", "rotation"]);
    let first = &records[0].event;
    assert_eq!((first.actor.as_str(), first.job.as_str()), ("api:test", "app"));
    assert_eq!(first.plugin.name, "kv-random");
    assert_eq!(first.plugin.sha256, jobs[0].plugin.sha256());
    assert!(records[1].event.vault_paths.iter().any(|p| p == "secret/rotator/state/app"), "{:?}", records[1]);
    assert!(records[4].event.vault_paths.iter().any(|p| p == "secret/audited/app"));
    // One rotation id per rotation, shared by its records.
    assert!(records[..7].iter().all(|r| r.event.rotation_id == first.rotation_id));
    assert_ne!(records[7].event.rotation_id, first.rotation_id);

    // The final state write of each rotation anchored the log's head: the
    // `finish` record, the newest one in the file at that moment.
    let anchor = store.load("app").await.unwrap().state.audit_anchor.expect("the state record holds an anchor");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!((anchor.seq, anchor.hash), (13, rotator_core::audit::line_hash(lines[12].as_bytes())));
    assert_eq!(anchor.log, rotator_core::audit::line_hash(lines[0].as_bytes()));

    for version in 1..=2 {
        let s = vault.kv_read_version("secret", "audited/app", Some(version)).await.unwrap().unwrap();
        let password = s.data.fields()["password"].as_str().unwrap().to_owned();
        assert!(!text.contains(&password), "a password reached the audit log");
        assert!(!metrics.render().contains(&password));
    }
    let rendered = metrics.render();
    let plugin = r#"plugin="kv-random@0.1.0""#;
    assert!(rendered.contains(&format!(r#"rotator_rotations_total{{{plugin},outcome="rotated"}} 2"#)), "{rendered}");
    assert!(
        rendered.contains(&format!(r#"rotator_step_duration_seconds_count{{{plugin},step="set"}} 2"#)),
        "{rendered}"
    );
}
