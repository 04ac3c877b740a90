//! The audit log against real files: chaining, reopening, concurrency, and
//! each kind of tampering `verify` must name.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

fn plugin() -> PluginIdentity {
    PluginIdentity { name: "kv-random".into(), version: "0.1.0".into(), sha256: "ab".repeat(32) }
}

fn event(step: Step, outcome: Outcome) -> AuditEvent {
    AuditEvent::new("scheduler", "demo-kv", plugin(), "rot-1", step, outcome).paths(["secret/data/demo/app"])
}

/// A log of `n` records in a fresh folder.
fn log_with(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for i in 1..=n {
        assert_eq!(log.append(event(Step::Create, Outcome::Ok)).unwrap(), i);
    }
    (dir, path)
}

pub(super) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

pub(super) fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

fn tampering(path: &Path) -> Tampering {
    match verify(path) {
        Err(VerifyError::Tampered(t)) => t,
        other => panic!("expected tampering, got {other:?}"),
    }
}

#[test]
fn records_are_chained_by_the_hash_of_the_previous_line() {
    let (_dir, path) = log_with(3);
    let lines = lines(&path);
    let records: Vec<AuditRecord> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(records[0].prev, GENESIS_PREV);
    assert_eq!(records[1].prev, line_hash(lines[0].as_bytes()));
    assert_eq!(records[2].prev, line_hash(lines[1].as_bytes()));
    assert!(time::OffsetDateTime::parse(&records[0].time, &time::format_description::well_known::Rfc3339).is_ok());
    assert!(records[0].time.ends_with('Z'), "{}", records[0].time);
    let summary = verify(&path).unwrap();
    assert_eq!((summary.records, summary.last_seq), (3, Some(3)));
    assert_eq!(summary.last_hash, line_hash(lines[2].as_bytes()));
    assert_eq!(summary.log, Some(line_hash(lines[0].as_bytes())));
    assert!(!summary.keyed);
}

#[test]
fn a_record_has_the_documented_fields_in_order() {
    let (_dir, path) = log_with(0);
    let log = AuditLog::open(&path).unwrap();
    log.append(event(Step::Rotation, Outcome::TimedOut).error("step `set` ran past 10s")).unwrap();
    let line = &lines(&path)[0];
    let want =
        ["seq", "time", "actor", "job", "plugin", "rotation_id", "step", "outcome", "vault_paths", "error", "prev"];
    let at: Vec<usize> = want.iter().map(|k| line.find(&format!("\"{k}\":")).unwrap()).collect();
    assert!(at.is_sorted() && at[0] == 1, "{line}");
    assert_eq!(serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).unwrap().len(), want.len());
    assert!(line.contains(r#""step":"rotation","outcome":"timed_out""#), "{line}");
    assert!(line.contains(r#""plugin":{"name":"kv-random","version":"0.1.0","sha256":"abab"#), "{line}");
}

#[test]
fn the_file_is_created_0600_and_reopening_continues_the_chain() {
    let (_dir, path) = log_with(2);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let log = AuditLog::open_with(&path, AuditOptions { fsync: true, key: None }).unwrap();
    assert_eq!(log.append(event(Step::Rollback, Outcome::Failed).error("target refused")).unwrap(), 3);
    assert_eq!(verify(&path).unwrap().records, 3);
}

#[test]
fn reopening_finds_the_last_line_across_read_chunks() {
    let (_dir, path) = log_with(0);
    let log = AuditLog::open(&path).unwrap();
    // Lines longer than the 4 KiB chunk the tail is read in.
    let long: Vec<String> = (0..500).map(|i| format!("secret/data/app-{i:04}")).collect();
    for _ in 0..3 {
        log.append(event(Step::Promote, Outcome::Ok).paths(long.clone())).unwrap();
    }
    drop(log);
    assert!(lines(&path)[2].len() > 8192);
    assert_eq!(AuditLog::open(&path).unwrap().append(event(Step::Finish, Outcome::Ok)).unwrap(), 4);
    assert_eq!(verify(&path).unwrap().last_seq, Some(4));
}

#[test]
fn concurrent_appends_from_clones_form_one_chain() {
    let (_dir, path) = log_with(0);
    let log = AuditLog::open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for _ in 0..25 {
                    log.append(AuditEvent::new(format!("api:t{t}"), "j", plugin(), "r", Step::Set, Outcome::Ok))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(verify(&path).unwrap().records, 100);
}

#[test]
fn an_incomplete_last_line_is_refused_on_open_and_reported_by_verify() {
    let (_dir, path) = log_with(2);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 10]).unwrap();
    assert!(matches!(AuditLog::open(&path), Err(AuditError::Unterminated { .. })));
    let t = tampering(&path);
    assert_eq!((t.line, t.seq, t.reason), (2, 2, TamperReason::Unterminated));
}

#[test]
fn an_edited_record_is_named_not_its_successor() {
    let (_dir, path) = log_with(5);
    let mut lines = lines(&path);
    lines[2] = lines[2].replace(r#""outcome":"ok""#, r#""outcome":"failed""#);
    write_lines(&path, &lines);
    let t = tampering(&path);
    assert_eq!((t.line, t.seq, t.reason.clone()), (3, 3, TamperReason::Changed { next_line: 4 }));
    assert_eq!(
        t.to_string(),
        "line 3 (seq 3): record was changed after it was written: its sha256 does not match `prev` in line 4"
    );
}

#[test]
fn an_edited_prev_field_is_blamed_on_its_own_line() {
    let (_dir, path) = log_with(5);
    let mut lines = lines(&path);
    let record: AuditRecord = serde_json::from_str(&lines[3]).unwrap();
    lines[3] = lines[3].replace(&record.prev, &"f".repeat(64));
    write_lines(&path, &lines);
    let t = tampering(&path);
    assert_eq!((t.line, t.seq, t.reason), (4, 4, TamperReason::PrevMismatch { prev_line: 3 }));
}

#[test]
fn a_field_added_to_or_reformatted_in_the_last_record_is_caught() {
    // Editing the last line changes no `prev`; the next append commits to
    // the edited bytes, so only the exact-form check catches it here.
    let (_dir, path) = log_with(2);
    let mut lines = lines(&path);
    lines[1] = lines[1].replacen('{', r#"{"extra":1,"#, 1);
    write_lines(&path, &lines);
    let t = tampering(&path);
    assert_eq!((t.line, t.seq), (2, 2));
    assert!(matches!(t.reason, TamperReason::NotARecord(ref m) if m.contains("not in the exact form")), "{t}");
    // Reformatting alone (a space after a colon) is caught the same way.
    lines[1] = lines[1].replacen(r#"{"extra":1,"#, "{", 1).replacen(r#""seq":2"#, r#""seq": 2"#, 1);
    write_lines(&path, &lines);
    assert!(matches!(tampering(&path).reason, TamperReason::NotARecord(_)));
}

#[test]
fn removed_reordered_and_foreign_lines_are_caught() {
    let (_dir, path) = log_with(5);
    let original = lines(&path);

    let mut removed = original.clone();
    removed.remove(2);
    write_lines(&path, &removed);
    let t = tampering(&path);
    assert_eq!((t.line, t.seq, t.reason), (3, 4, TamperReason::SeqGap { expected: 3, found: 4 }));

    let mut swapped = original.clone();
    swapped.swap(1, 2);
    write_lines(&path, &swapped);
    assert_eq!(tampering(&path).reason, TamperReason::SeqGap { expected: 2, found: 3 });

    write_lines(&path, &original[1..]);
    assert_eq!(tampering(&path).reason, TamperReason::SeqGap { expected: 1, found: 2 });

    let mut junk = original.clone();
    junk.insert(1, "not json".into());
    write_lines(&path, &junk);
    let t = tampering(&path);
    assert_eq!((t.line, t.seq), (2, 2));
    assert!(matches!(t.reason, TamperReason::NotARecord(_)), "{t}");

    write_lines(&path, &original);
    assert_eq!(verify(&path).unwrap().records, 5);
}

#[test]
fn a_rewritten_first_record_and_a_bad_time_are_caught() {
    let (_dir, path) = log_with(1);
    let line = &lines(&path)[0];
    write_lines(&path, &[line.replace(GENESIS_PREV, &"1".repeat(64))]);
    assert_eq!(tampering(&path).reason, TamperReason::BadStart);

    let record: AuditRecord = serde_json::from_str(line).unwrap();
    write_lines(&path, &[line.replace(&record.time, "yesterday")]);
    assert!(matches!(tampering(&path).reason, TamperReason::BadTime(_)));
}

#[test]
fn an_empty_or_missing_file() {
    let (dir, path) = log_with(0);
    let empty = verify(&path).unwrap();
    assert_eq!((empty.records, empty.last_seq, empty.last_hash.as_str(), empty.log), (0, None, GENESIS_PREV, None));
    let missing = dir.path().join("nope.jsonl");
    let err = verify(&missing).unwrap_err();
    assert!(matches!(err, VerifyError::Io { ref path, .. } if *path == missing), "{err}");
}

#[test]
fn a_failed_append_leaves_the_chain_intact() {
    let (_dir, path) = log_with(1);
    let log = AuditLog::open(&path).unwrap();
    // A read-only handle on the same file: the write fails, nothing is
    // recorded, and the next successful append still gets seq 2.
    let read_only = AuditLog {
        inner: Arc::new(Inner {
            path: path.clone(),
            options: AuditOptions::default(),
            writer: Mutex::new(Writer {
                file: File::open(&path).unwrap(),
                len: std::fs::metadata(&path).unwrap().len(),
                next_seq: 2,
                prev: line_hash(lines(&path)[0].as_bytes()),
                log: Some(line_hash(lines(&path)[0].as_bytes())),
                recent: Default::default(),
            }),
        }),
    };
    assert!(matches!(read_only.append(event(Step::Set, Outcome::Ok)), Err(AuditError::Write { .. })));
    assert_eq!(log.append(event(Step::Set, Outcome::Ok)).unwrap(), 2);
    assert_eq!(verify(&path).unwrap().records, 2);
}
