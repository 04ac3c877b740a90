//! The keyed, anchored audit log end to end: the real daemon (`rotator dev`)
//! rotates and anchors the log's head in its state record in the dev
//! server, then the real `rotator audit verify --config` catches a cut-off
//! tail through the anchor and a log rebuilt with the wrong key.

#[path = "support/dev.rs"]
mod dev;

use std::path::Path;
use std::process::Output;

use dev::{Dev, ROOT_TOKEN, http, rotator, vault_get};
use rotator_core::audit::{AuditKey, AuditLog, AuditOptions, AuditRecord};
use secrecy::SecretString;

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// `rotator audit verify FILE [ARGS]` against the dev server at `addr`.
fn verify(file: &Path, args: &[&str], addr: &str) -> Output {
    let out = rotator()
        .args(["audit", "verify"])
        .arg(file)
        .args(args)
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .output()
        .unwrap();
    for text in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(text).contains(KEY), "the key was printed");
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The job's state record in the dev server.
async fn state(addr: &str, job: &str) -> serde_json::Value {
    vault_get(addr, &format!("secret/data/rotator/state/{job}")).await["data"]["data"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_with_the_config_catches_a_cut_tail_and_a_log_rebuilt_with_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key_file, config) =
        (dir.path().join("audit.jsonl"), dir.path().join("audit.key"), dir.path().join("verify.toml"));
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let daemon_section =
        format!("[daemon]\naudit_log = {:?}\naudit_key = {{ file = {:?} }}\n", log.display(), key_file.display());
    // The daemon's config has the job; the one `verify` is given does not:
    // it finds the job's anchor by listing the state records.
    let jobs = "[[jobs]]\nid = \"kv\"\nplugin = \"kv-random\"\nsecret = { path = \"anchored/app\" }\n\
                interval = \"1h\"\nsettings = { field = \"password\" }\n";
    std::fs::write(&config, &daemon_section).unwrap();
    let mut dev = Dev::with_jobs(&format!("{daemon_section}\n{jobs}"), &[]);
    let addr = dev.wait_for("Address:");
    let api = dev.wait_for("rotator API:").replace("/healthz", "");
    let token = dev.wait_for("API token:");

    // The first rotation starts on its own (the job was never rotated);
    // wait for it to be booked, then ask for a second one, which answers
    // when it is done. Nothing else is due for an hour.
    for tries in 0.. {
        if state(&addr, "kv").await["history"].as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        assert!(tries < 1200, "the first rotation was never booked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rotated = http().post(format!("{api}/jobs/kv/rotate")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(rotated.status().as_u16(), 200, "{}", rotated.text().await.unwrap());

    // Seven records per rotation. The final state write anchors the
    // `finish` record; the `rotation` record after it is not anchored yet.
    let original = std::fs::read_to_string(&log).unwrap();
    assert_eq!(original.lines().count(), 14, "{original}");
    let anchor = state(&addr, "kv").await["audit_anchor"].clone();
    let last_mac = |text: &str, seq: usize| {
        AuditRecord::parse_line(text.lines().nth(seq - 1).unwrap().as_bytes()).unwrap().mac.unwrap()
    };
    assert_eq!(anchor["seq"], 13, "{anchor}");
    assert_eq!(anchor["hash"], last_mac(&original, 13));
    assert_eq!(anchor["log"], last_mac(&original, 1));
    let config_arg = ["--config", config.to_str().unwrap()];

    let out = verify(&log, &config_arg, &addr);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(text.starts_with("ok: 14 records, chain intact\nchain: keyed (HMAC-SHA256"), "{text}");
    assert!(
        text.contains(
            "anchors: 1 job(s) in the state records agree; the newest names seq 13 (job kv), 1 record(s) after it"
        ),
        "{text}"
    );
    // Without the key, a keyed log cannot be checked at all.
    let out = verify(&log, &[], &addr);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the log is keyed"), "{out:?}");

    // Cut after record 10: a valid, shorter chain that only the anchor betrays.
    let kept: String = original.lines().take(10).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, kept).unwrap();
    let out = verify(&log, &config_arg, &addr);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let want = format!(
        "truncated: anchor for job kv says seq 13 hash {}, file ends at seq 10",
        anchor["hash"].as_str().unwrap()
    );
    assert!(stdout(&out).contains(&want), "{}", stdout(&out));

    // The same events rebuilt into a fresh chain under another key.
    let forged = dir.path().join("forged.jsonl");
    let wrong = AuditKey::from_hex(&SecretString::from("ab".repeat(32))).unwrap();
    let writer = AuditLog::open_with(&forged, AuditOptions { fsync: false, key: Some(wrong) }).unwrap();
    for line in original.lines() {
        writer.append(AuditRecord::parse_line(line.as_bytes()).unwrap().event).unwrap();
    }
    std::fs::copy(&forged, &log).unwrap();
    let out = verify(&log, &config_arg, &addr);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).trim_end(),
        "tampered: line 1 (seq 1): `mac` is wrong: the record was changed after it was written, or written with another key"
    );

    std::fs::write(&log, &original).unwrap();
    assert_eq!(verify(&log, &config_arg, &addr).status.code(), Some(0));
    let (out, err) = dev.stop();
    assert!(!format!("{out}{err}").contains(KEY), "the key reached the daemon's output");
}
