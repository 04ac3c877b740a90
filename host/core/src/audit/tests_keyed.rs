//! The keyed chain and the anchors against real files: what a record's MAC
//! covers, which logs the writer refuses to continue, every way a keyed log
//! can be downgraded, forged or spliced, and a property test that any
//! single-byte change, removal, reorder or truncation of a generated log is
//! caught (the truncations through the anchor).

use std::path::Path;

use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PropConfig, RngAlgorithm, TestRng, TestRunner};
use secrecy::SecretString;

use super::anchor::check_anchors;
use super::tests::{lines, write_lines};
use super::*;

const KEY_HEX: &str = "5c0ffee5a11ce0b0b0deadbeef00112233445566778899aabbccddeeff001122";

fn key(hex: &str) -> AuditKey {
    AuditKey::from_hex(&SecretString::from(hex.to_owned())).unwrap()
}

fn keyed() -> AuditOptions {
    AuditOptions { fsync: false, key: Some(key(KEY_HEX)) }
}

fn event(step: Step) -> AuditEvent {
    let plugin = PluginIdentity { name: "kv-random".into(), version: "0.1.0".into(), sha256: "ab".repeat(32) };
    AuditEvent::new("scheduler", "demo-kv", plugin, "rot-1", step, Outcome::Ok).paths(["secret/data/demo/app"])
}

/// A log of `n` records written with `options`, and the writer.
fn write_log(path: &Path, n: usize, options: AuditOptions) -> AuditLog {
    let log = AuditLog::open_with(path, options).unwrap();
    for _ in 0..n {
        log.append(event(Step::Set)).unwrap();
    }
    log
}

fn with_key() -> VerifyOptions {
    VerifyOptions { key: Some(key(KEY_HEX)), ..VerifyOptions::default() }
}

fn reason(path: &Path, options: &VerifyOptions) -> (u64, TamperReason) {
    match verify_with(path, options) {
        Err(VerifyError::Tampered(t)) => (t.line, t.reason),
        other => panic!("expected tampering, got {other:?}"),
    }
}

/// Rebuild `records` as a fresh chain: keyed with `with`, or unkeyed.
fn rebuild(records: &[AuditRecord], with: Option<&AuditKey>) -> Vec<String> {
    let mut prev = GENESIS_PREV.to_owned();
    records
        .iter()
        .map(|r| {
            let mut r = AuditRecord { prev: prev.clone(), mac: None, ..r.clone() };
            r.mac = with.map(|k| k.mac(&r.to_line()));
            let line = r.to_line();
            prev = r.hash(&line);
            String::from_utf8(line).unwrap()
        })
        .collect()
}

fn records(path: &Path) -> Vec<AuditRecord> {
    lines(path).iter().map(|l| AuditRecord::parse_line(l.as_bytes()).unwrap()).collect()
}

#[test]
fn a_keyed_record_carries_the_hmac_of_its_line_without_the_mac_and_links_to_the_previous_mac() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3, keyed());
    let lines = lines(&path);
    let mut prev = GENESIS_PREV.to_owned();
    for line in &lines {
        // Computed here independently: cut the `,"mac":"…"` suffix off.
        let at = line.rfind(r#","mac":""#).unwrap();
        let (unsigned, mac) = (format!("{}}}", &line[..at]), &line[at + 8..line.len() - 2]);
        let mut hmac = Hmac::<sha2::Sha256>::new_from_slice(&hex::decode(KEY_HEX).unwrap()).unwrap();
        hmac.update(unsigned.as_bytes());
        assert_eq!(mac, hex::encode(hmac.finalize().into_bytes()), "{line}");
        assert!(line.contains(&format!(r#""prev":"{prev}","mac":"#)), "{line}");
        prev = mac.to_owned();
    }
    let summary = verify_with(&path, &with_key()).unwrap();
    assert!(summary.keyed);
    assert_eq!((summary.records, summary.last_hash.as_str()), (3, prev.as_str()));
    assert!(!std::fs::read_to_string(&path).unwrap().contains(KEY_HEX), "the key reached the file");
    // Without the key a keyed log cannot be checked, and says so.
    assert!(matches!(verify(&path), Err(VerifyError::NeedsKey { line: 1 })));
}

#[test]
fn the_writer_continues_only_a_log_of_its_own_kind_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (keyed_path, plain_path) = (dir.path().join("keyed.jsonl"), dir.path().join("plain.jsonl"));
    write_log(&keyed_path, 2, keyed());
    write_log(&plain_path, 2, AuditOptions::default());

    let again = AuditLog::open_with(&keyed_path, keyed()).unwrap();
    assert_eq!(again.append(event(Step::Finish)).unwrap(), 3);
    assert_eq!(verify_with(&keyed_path, &with_key()).unwrap().records, 3);

    assert!(matches!(AuditLog::open(&keyed_path), Err(AuditError::Keyed { .. })));
    let other = AuditOptions { key: Some(key(&"77".repeat(32))), ..keyed() };
    let err = AuditLog::open_with(&keyed_path, other).unwrap_err();
    assert!(matches!(err, AuditError::KeyMismatch { .. }), "{err}");
    assert!(matches!(AuditLog::open_with(&plain_path, keyed()), Err(AuditError::Unkeyed { .. })));
    // Nothing was appended by the refusals.
    assert_eq!(lines(&keyed_path).len(), 3);
    assert_eq!(lines(&plain_path).len(), 2);
    assert!(!format!("{again:?}").contains(KEY_HEX));
}

#[test]
fn a_keyed_log_cannot_be_downgraded_forged_or_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 4, keyed());
    let original = lines(&path);
    let recs = records(&path);

    // Rebuilt as an unkeyed chain: consistent, but a keyed check refuses it.
    write_lines(&path, &rebuild(&recs, None));
    assert_eq!(verify(&path).unwrap().records, 4, "a consistent unkeyed chain on its own");
    assert_eq!(reason(&path, &with_key()), (1, TamperReason::Unkeyed));

    // Rebuilt with another key: the first MAC already fails.
    write_lines(&path, &rebuild(&recs, Some(&key(&"99".repeat(32)))));
    assert_eq!(reason(&path, &with_key()), (1, TamperReason::BadMac));

    // An edited *last* record: its own MAC catches it (no anchor needed).
    let mut edited = original.clone();
    edited[3] = edited[3].replace(r#""outcome":"ok""#, r#""outcome":"failed""#);
    write_lines(&path, &edited);
    assert_eq!(reason(&path, &with_key()), (4, TamperReason::BadMac));

    // A record carried over from another log under the same key.
    let other = dir.path().join("other.jsonl");
    write_log(&other, 4, keyed());
    let mut spliced = original.clone();
    spliced[2] = lines(&other)[2].clone();
    write_lines(&path, &spliced);
    assert_eq!(reason(&path, &with_key()), (3, TamperReason::NotLinked { prev_line: 2 }));

    // A forged unkeyed record appended to a keyed log; a keyed one to an unkeyed log.
    let mut appended = original.clone();
    appended.push(rebuild(&recs, None)[0].replace(r#""seq":1"#, r#""seq":5"#));
    write_lines(&path, &appended);
    assert_eq!(reason(&path, &with_key()), (5, TamperReason::Unkeyed));
    let mut mixed = rebuild(&recs, None);
    mixed.push(original[0].clone());
    write_lines(&path, &mixed);
    assert_eq!(reason(&path, &VerifyOptions::default()), (5, TamperReason::Mixed));

    // A MAC in capitals decodes to the same bytes but is not what was written.
    let mut shouting = original.clone();
    let mac = recs[3].mac.clone().unwrap();
    shouting[3] = shouting[3].replace(&mac, &mac.to_uppercase());
    write_lines(&path, &shouting);
    assert_eq!(reason(&path, &with_key()), (4, TamperReason::BadMac));

    write_lines(&path, &original);
    assert_eq!(verify_with(&path, &with_key()).unwrap().records, 4);
}

#[test]
fn the_head_names_the_newest_record_written_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = write_log(&path, 0, keyed());
    assert_eq!(log.head(), None, "nothing to anchor yet");
    log.append(event(Step::Create)).unwrap();
    log.append(event(Step::Set)).unwrap();
    let recs = records(&path);
    let head = AuditAnchor { log: recs[0].mac.clone().unwrap(), seq: 2, hash: recs[1].mac.clone().unwrap() };
    assert_eq!(log.head(), Some(head.clone()));
    assert_eq!(crate::rotation::Observer::anchor(&log, None), Some(head.clone()));
    drop(log);
    assert_eq!(AuditLog::open_with(&path, keyed()).unwrap().head(), Some(head));

    let plain = dir.path().join("plain.jsonl");
    let log = write_log(&plain, 1, AuditOptions::default());
    let line = &lines(&plain)[0];
    let hash = line_hash(line.as_bytes());
    assert_eq!(log.head(), Some(AuditAnchor { log: hash.clone(), seq: 1, hash }));
}

#[test]
fn a_stored_anchor_that_shows_a_cut_is_kept_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let at5 = write_log(&path, 5, keyed()).head().unwrap();
    let original = lines(&path);

    // Intact: the head replaces an older anchor of the same log.
    let log = AuditLog::open_with(&path, keyed()).unwrap();
    log.append(event(Step::Finish)).unwrap();
    let at6 = log.head().unwrap();
    assert_eq!(log.anchor_over(Some(&at5)), Some(at6.clone()));
    drop(log);

    // Cut to three records: an anchor past the end is kept...
    write_lines(&path, &original[..3]);
    let log = AuditLog::open_with(&path, keyed()).unwrap();
    assert_eq!(log.anchor_over(Some(&at5)), Some(at5.clone()));
    // ...and still kept once the daemon has written past it: seq 5 now
    // holds another record.
    for _ in 0..4 {
        log.append(event(Step::Set)).unwrap();
    }
    assert_eq!(log.head().unwrap().seq, 7);
    assert_eq!(log.anchor_over(Some(&at5)), Some(at5.clone()));
    assert_eq!(log.anchor_over(Some(&at6)), Some(at6.clone()), "seq 6 differs too");
    // An anchor the file agrees with is replaced by the head.
    let at7 = log.head().unwrap();
    let mut at3 = at7.clone();
    (at3.seq, at3.hash) = (3, records(&path)[2].mac.clone().unwrap());
    assert_eq!(log.anchor_over(Some(&at3)), Some(at7.clone()));

    // An anchor of another log is replaced (a log moved aside looks the same).
    let foreign = AuditAnchor { log: "f".repeat(64), ..at5 };
    assert_eq!(log.anchor_over(Some(&foreign)), Some(at7));
}

/// `anchors` as the jobs `a`, `b`, … would hold them.
fn anchors(heads: &[AuditAnchor]) -> Anchors {
    let anchors = heads
        .iter()
        .enumerate()
        .map(|(i, anchor)| JobAnchor { job: ((b'a' + i as u8) as char).to_string(), anchor: anchor.clone() })
        .collect();
    Anchors { anchors, listed: true }
}

#[test]
fn anchors_report_truncation_rewriting_and_a_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = write_log(&path, 3, keyed());
    let at3 = log.head().unwrap();
    log.append(event(Step::Finish)).unwrap();
    let at4 = log.head().unwrap();
    drop(log);
    let both = anchors(&[at3.clone(), at4.clone()]);
    let key = || with_key().key;
    let checked = verify_anchored(&path, key(), &both).unwrap();
    assert_eq!(checked.problems, []);

    // Cut the last record: the newest anchor notices, the older one agrees.
    let original = lines(&path);
    write_lines(&path, &original[..3]);
    let checked = verify_anchored(&path, key(), &both).unwrap();
    assert_eq!(checked.problems.len(), 1);
    assert_eq!(
        checked.problems[0].to_string(),
        format!("truncated: anchor for job b says seq 4 hash {}, file ends at seq 3", at4.hash)
    );
    // Emptied: every anchor notices.
    std::fs::write(&path, "").unwrap();
    let checked = verify_anchored(&path, key(), &both).unwrap();
    assert!(checked.problems.iter().all(|p| matches!(p, AnchorProblem::Truncated { file_ends_at: 0, .. })));
    assert_eq!(checked.problems.len(), 2);

    // Rewritten from record 3 on by the key holder: the chain verifies, the anchor does not.
    let mut recs: Vec<AuditRecord> = original.iter().map(|l| AuditRecord::parse_line(l.as_bytes()).unwrap()).collect();
    recs[2].event.outcome = Outcome::Failed;
    write_lines(&path, &rebuild(&recs, with_key().key.as_ref()));
    let checked = verify_anchored(&path, key(), &both).unwrap();
    assert!(matches!(&checked.problems[0], AnchorProblem::Rewritten { anchor, .. } if anchor.anchor.seq == 3));
    assert_eq!(checked.problems.len(), 2);

    // A fresh log in its place: the anchors are about another one.
    std::fs::remove_file(&path).unwrap();
    write_log(&path, 5, keyed());
    let checked = verify_anchored(&path, key(), &both).unwrap();
    assert!(checked.problems.iter().all(|p| matches!(p, AnchorProblem::OtherLog { .. })), "{:?}", checked.problems);
    assert!(checked.problems[0].to_string().starts_with("replaced: anchor for job a says seq 3"));
}

#[test]
fn an_over_long_event_is_shortened_visibly_and_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = write_log(&path, 0, keyed());
    let huge = event(Step::Rotation).error("é".repeat(MAX_LINE_BYTES)).paths((0..5000).map(|i| format!("p/{i}")));
    log.append(huge).unwrap();
    let line = &lines(&path)[0];
    assert!(line.len() <= MAX_LINE_BYTES, "{}", line.len());
    assert!(line.contains("…[truncated "), "marker present");
    assert!(line.contains("…[4936 more paths]"));
    assert_eq!(verify_with(&path, &with_key()).unwrap().records, 1);
}

/// One way to damage a log file.
#[derive(Debug, Clone)]
enum Damage {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Remove one whole record.
    Remove(Index),
    /// Swap two different records.
    Swap(Index, Index),
    /// Cut the file at any byte before its end.
    CutBytes(Index),
    /// Cut whole records off the end (1..=all).
    CutRecords(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Damage::Flip(i, m)),
        any::<Index>().prop_map(Damage::Remove),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Damage::Swap(a, b)),
        any::<Index>().prop_map(Damage::CutBytes),
        any::<Index>().prop_map(Damage::CutRecords),
    ]
}

/// Events with arbitrary text (any Unicode, control characters included).
fn events() -> impl Strategy<Value = Vec<AuditEvent>> {
    let text = || prop::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter);
    let one = (0..10usize, 0..7usize, text(), prop::option::of(text()), prop::collection::vec(text(), 0..3)).prop_map(
        |(step, outcome, actor, error, paths)| {
            use Step::*;
            let steps = [Create, Stage, Set, Test, Promote, Finish, Rollback, Record, Resume, Rotation];
            let outcomes = [
                Outcome::Ok,
                Outcome::Failed,
                Outcome::Denied,
                Outcome::Conflict,
                Outcome::Trapped,
                Outcome::TimedOut,
                Outcome::KeptPending,
            ];
            let mut e = event(steps[step]).paths(paths);
            e.actor = actor;
            e.outcome = outcomes[outcome];
            e.error = error;
            e
        },
    );
    prop::collection::vec(one, 2..10)
}

/// Apply `d` to the log's lines (each with its newline); `None` if it
/// would change nothing (swapping equal records).
fn apply(d: &Damage, lines: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut lines = lines.to_vec();
    let whole = |lines: &[Vec<u8>]| lines.concat();
    Some(match d {
        Damage::Flip(i, mask) => {
            let mut bytes = whole(&lines);
            let at = i.index(bytes.len());
            bytes[at] ^= mask;
            bytes
        }
        Damage::Remove(i) => {
            lines.remove(i.index(lines.len()));
            whole(&lines)
        }
        Damage::Swap(a, b) => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            if lines[a] == lines[b] {
                return None;
            }
            lines.swap(a, b);
            whole(&lines)
        }
        Damage::CutBytes(i) => {
            let bytes = whole(&lines);
            bytes[..i.index(bytes.len())].to_vec()
        }
        Damage::CutRecords(i) => {
            let keep = i.index(lines.len());
            whole(&lines[..keep])
        }
    })
}

/// Whether `bytes` fails the chain check or contradicts `anchor`.
fn caught(bytes: &[u8], key: Option<&AuditKey>, anchor: &AuditAnchor) -> bool {
    let anchors = anchors(std::slice::from_ref(anchor));
    let options = VerifyOptions { key: key.cloned(), hashes_at: anchors.seqs() };
    match verify_reader(bytes, &options) {
        Err(VerifyError::Tampered(_)) => true,
        Err(e) => panic!("not a verdict: {e}"),
        Ok(summary) => !check_anchors(&summary, &anchors).is_empty(),
    }
}

/// The property, `cases` times from `seed`.
fn every_damage_is_caught(seed: [u8; 32], cases: u32) {
    let dir = tempfile::tempdir().unwrap();
    let config = PropConfig { cases, failure_persistence: None, ..PropConfig::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let n = std::cell::Cell::new(0u32);
    let result = runner.run(&(events(), any::<bool>(), damage()), |(events, keyed_log, d)| {
        n.set(n.get() + 1);
        let path = dir.path().join(format!("{}.jsonl", n.get()));
        let options = if keyed_log { keyed() } else { AuditOptions::default() };
        let key = options.key.clone();
        let log = AuditLog::open_with(&path, options).unwrap();
        for e in events {
            log.append(e).unwrap();
        }
        let anchor = log.head().unwrap();
        drop(log);
        let text = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<Vec<u8>> = text.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        prop_assert!(!caught(&text, key.as_ref(), &anchor), "the intact log must pass");
        if let Some(damaged) = apply(&d, &lines) {
            prop_assert!(caught(&damaged, key.as_ref(), &anchor), "{d:?} went unnoticed");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {}: {e}", hex::encode(seed));
    }
}

#[test]
fn any_single_byte_change_removal_reorder_or_truncation_is_caught_fixed_seed() {
    every_damage_is_caught(*b"rotator audit chain, fixed seed!", 10_000);
}

#[test]
fn any_single_byte_change_removal_reorder_or_truncation_is_caught_random_seed() {
    every_damage_is_caught(rand::random(), 10_000);
}
