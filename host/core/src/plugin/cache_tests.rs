//! The cache's selection rule as a property (fixed seed and a random one),
//! and pruning a real directory full of hostile files.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, RngAlgorithm, TestRng, TestRunner};

use sha2::{Digest, Sha256};

use super::*;

const NOW_SECS: u64 = 2_000_000_000;

fn name(i: usize, kind: Kind) -> String {
    let ext = if kind == Kind::Compiled { "cwasm".to_owned() } else { format!("tmp{i}") };
    format!("{:064x}-{:016x}.{ext}", i, 7)
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    let one = (0u64..64 << 20, 0u64..10_000, prop::bool::weighted(0.15));
    prop::collection::vec(one, 0..40).prop_map(|raw| {
        let mut v: Vec<Entry> = raw
            .into_iter()
            .enumerate()
            .map(|(i, (size, idle, partial))| {
                let kind = if partial { Kind::Partial } else { Kind::Compiled };
                Entry {
                    file: PathBuf::from("/cache").join(name(i, kind)),
                    kind,
                    sha256: format!("{i:064x}"),
                    size,
                    last_used: SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS - idle),
                    plugin: None,
                }
            })
            .collect();
        // As `list` hands them over: least recently used first.
        v.sort_by(|a, b| (a.last_used, &a.file).cmp(&(b.last_used, &b.file)));
        v
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    let older = prop::option::of((0u64..12_000).prop_map(Duration::from_secs));
    let max = prop::option::of(prop_oneof![Just(0u64), 0u64..(1 << 30)]);
    (prop::bool::weighted(0.1), older, max).prop_map(|(all, older_than, max_bytes)| Policy {
        all,
        older_than,
        max_bytes,
    })
}

/// What must hold of `select`'s answer for any cache and policy.
fn check_selection(entries: &[Entry], policy: &Policy, keep_index: Option<usize>) -> Result<(), TestCaseError> {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let keep = keep_index.and_then(|i| entries.get(i)).map(|e| e.file.clone());
    let chosen = select(entries, policy, keep.as_deref(), now);
    let idle = |e: &Entry| now.duration_since(e.last_used).unwrap();
    let is_keep = |e: &Entry| Some(&e.file) == keep.as_ref();
    prop_assert!(chosen.windows(2).all(|w| w[0] < w[1]), "indices in order, no repeats");
    for (i, e) in entries.iter().enumerate() {
        let picked = chosen.contains(&i);
        if is_keep(e) {
            prop_assert!(!picked, "the entry just written is never removed");
            continue;
        }
        // Every explicit rule is obeyed.
        if policy.all || policy.older_than.is_some_and(|d| idle(e) > d) {
            prop_assert!(picked, "entry {i} falls under the policy");
        }
        if e.kind == Kind::Partial {
            prop_assert_eq!(
                picked,
                policy.all || policy.older_than.is_some_and(|d| idle(e) > d) || idle(e) > STALE_PARTIAL
            );
        }
    }
    let remaining: u64 = entries.iter().enumerate().filter(|(i, _)| !chosen.contains(i)).map(|(_, e)| e.size).sum();
    if let Some(max) = policy.max_bytes {
        // Over the bound only if nothing more may go.
        let removable_left = entries
            .iter()
            .enumerate()
            .any(|(i, e)| !chosen.contains(&i) && !is_keep(e) && e.kind == Kind::Compiled && e.size > 0);
        prop_assert!(remaining <= max || !removable_left, "{remaining} > {max} with entries left to remove");
        // Least recently used first: no kept entry is older than one
        // removed only for size.
        let for_size = |e: &Entry| !(policy.all || policy.older_than.is_some_and(|d| idle(e) > d));
        let newest_removed = entries
            .iter()
            .enumerate()
            .filter(|(i, e)| chosen.contains(i) && e.kind == Kind::Compiled && for_size(e))
            .map(|(i, _)| i)
            .max();
        if let Some(last) = newest_removed {
            for (i, e) in entries.iter().enumerate().take(last) {
                prop_assert!(
                    chosen.contains(&i) || is_keep(e) || e.kind == Kind::Partial,
                    "entry {i} kept though a newer one ({last}) went"
                );
            }
            // And no more than needed: without the last one removed, the
            // cache was still over the bound.
            prop_assert!(
                remaining + entries[last].size > max,
                "entry {last} went although the cache was under the bound"
            );
        }
    } else {
        let expected: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let e = &entries[i];
                !is_keep(e)
                    && (policy.all
                        || policy.older_than.is_some_and(|d| idle(e) > d)
                        || (e.kind == Kind::Partial && idle(e) > STALE_PARTIAL))
            })
            .collect();
        prop_assert_eq!(chosen, expected, "without a size bound, only the rules remove");
    }
    Ok(())
}

fn selection_holds(seed: [u8; 32], cases: u32) {
    let config = PropConfig { cases, failure_persistence: None, ..PropConfig::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let strategy = (entries(), policy(), prop::option::of(0usize..40));
    if let Err(e) = runner.run(&strategy, |(entries, policy, keep)| check_selection(&entries, &policy, keep)) {
        panic!("seed {}: {e}", hex::encode(seed));
    }
}

#[test]
fn pruning_keeps_the_bound_removes_least_recently_used_first_and_never_the_new_entry_fixed_seed() {
    selection_holds(*b"rotator cache selection, fixed!!", 5_000);
}

#[test]
fn pruning_keeps_the_bound_removes_least_recently_used_first_and_never_the_new_entry_random_seed() {
    selection_holds(rand::random(), 5_000);
}

#[test]
fn names_are_recognised_only_as_written() {
    let sha = "a".repeat(64);
    assert_eq!(parse_name(&format!("{sha}-0123456789abcdef.cwasm")), Some((Kind::Compiled, sha.as_str())));
    assert_eq!(parse_name(&format!("{sha}-0123456789abcdef.tmp42")), Some((Kind::Partial, sha.as_str())));
    for other in [
        "notes.txt".to_owned(),
        format!("{sha}-0123456789abcdef.tmp"),
        format!("{sha}-0123456789abcdef.meta"),
        format!("{sha}-0123456789abcdef.tmpx"),
        format!("{sha}-0123456789abcdeg.cwasm"),
        format!("{}-0123456789abcdef.cwasm", "a".repeat(63)),
        format!("{sha}-0123456789abcdef.cwasm.bak"),
        format!("../{sha}-0123456789abcdef.cwasm"),
    ] {
        assert_eq!(parse_name(&other), None, "{other}");
    }
}

#[test]
fn bounds_parse_as_sizes_or_off() {
    assert_eq!(parse_bound("1GiB").unwrap(), Some(1 << 30));
    assert_eq!(parse_bound("512MiB").unwrap(), Some(512 << 20));
    assert_eq!(parse_bound(" OFF ").unwrap(), None);
    assert_eq!(parse_bound("1048576").unwrap(), Some(1 << 20));
    assert_eq!(parse_bound("64 KiB").unwrap(), Some(64 << 10));
    assert_eq!(parse_bound("0B").unwrap(), Some(0));
    for bad in ["", "MiB", "-1MiB", "1.5GiB", "1TiB", "99999999999999999999", "17179869184GiB"] {
        assert!(parse_bound(bad).is_err(), "{bad}");
    }
    let e = parse_bound("lots").unwrap_err().to_string();
    assert!(e.contains("ROTATOR_CACHE_MAX_SIZE") && e.contains("lots"), "{e}");
}

/// A file of `size` bytes at `path`, last used `idle` ago.
fn file(path: &Path, size: usize, idle: Duration) {
    std::fs::write(path, vec![0u8; size]).unwrap();
    let t = SystemTime::now() - idle;
    let f = File::options().write(true).open(path).unwrap();
    f.set_times(FileTimes::new().set_accessed(t).set_modified(t)).unwrap();
}

#[test]
fn pruning_never_follows_a_symlink_nor_touches_what_it_did_not_write() {
    let root = tempfile::tempdir().unwrap();
    let (cache, outside) = (root.path().join("cache"), root.path().join("outside"));
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    let victim = outside.join("precious.cwasm");
    file(&victim, 10, Duration::ZERO);
    file(&outside.join("dir").join("inner"), 10, Duration::ZERO);
    let entry = |i: usize, kind| cache.join(name(i, kind));

    // Hostile: symlinks named like entries, to a file and to a directory
    // outside; a directory named like an entry; a file rotator never writes.
    symlink(&victim, entry(1, Kind::Compiled)).unwrap();
    symlink(outside.join("dir"), entry(2, Kind::Compiled)).unwrap();
    let partial_link = cache.join(format!("{:064x}-{:016x}.tmp9", 3, 7));
    symlink(&victim, &partial_link).unwrap();
    std::fs::create_dir(entry(4, Kind::Compiled)).unwrap();
    file(&entry(4, Kind::Compiled).join("inside"), 10, Duration::ZERO);
    file(&cache.join("notes.txt"), 10, Duration::from_secs(1 << 20));
    // Real ones: two entries, one a built-in's; a stale and a fresh partial.
    file(&entry(3, Kind::Compiled), 100, Duration::from_secs(3 * 3600));
    let builtin = &crate::builtin::BUILTINS[0];
    let builtin_entry = cache.join(format!("{}-{:016x}.cwasm", hex::encode(Sha256::digest(builtin.wasm)), 7));
    file(&builtin_entry, 200, Duration::from_secs(60));
    file(&entry(6, Kind::Partial), 50, STALE_PARTIAL * 2);
    file(&entry(7, Kind::Partial), 50, Duration::ZERO);

    // Reached through a symlink to the cache directory itself: listed
    // (and pruned) canonically.
    let via = root.path().join("via");
    symlink(&cache, &via).unwrap();
    let listing = list(&via).unwrap();
    assert_eq!(listing.dir, cache.canonicalize().unwrap());
    let sizes: Vec<(u64, Kind)> = listing.entries.iter().map(|e| (e.size, e.kind)).collect();
    assert_eq!(sizes, [(100, Kind::Compiled), (50, Kind::Partial), (200, Kind::Compiled), (50, Kind::Partial)]);
    assert_eq!(listing.entries[2].plugin, Some(format!("builtin:{}", builtin.name)));
    assert_eq!(listing.entries[0].plugin, None);
    assert_eq!(listing.skipped.len(), 5, "{:?}", listing.skipped);

    let pruned = prune(&via, &Policy { all: true, ..Policy::default() }, None).unwrap();
    assert_eq!(pruned.removed.len(), 4);
    assert_eq!(pruned.freed(), 400);
    let mut left: Vec<String> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    let mut expected = vec![
        name(1, Kind::Compiled),
        name(2, Kind::Compiled),
        partial_link.file_name().unwrap().to_string_lossy().into_owned(),
        name(4, Kind::Compiled),
        "notes.txt".to_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected, "only what rotator wrote went");
    assert!(
        victim.is_file() && outside.join("dir/inner").is_file() && entry(4, Kind::Compiled).join("inside").is_file()
    );
}

#[test]
fn a_bound_removes_the_least_recently_used_until_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    for (i, idle) in [(1, 300), (2, 100), (3, 200), (4, 10)] {
        file(&cache.join(name(i, Kind::Compiled)), 1000, Duration::from_secs(idle));
    }
    // Using an entry makes it recent again.
    mark_used(&cache.join(name(1, Kind::Compiled)));
    let keep = cache.canonicalize().unwrap().join(name(4, Kind::Compiled));
    let pruned = prune(cache, &Policy { max_bytes: Some(2500), ..Policy::default() }, Some(&keep)).unwrap();
    let gone: Vec<&str> = pruned.removed.iter().map(|e| &e.sha256[60..]).collect();
    assert_eq!(gone, ["0003", "0002"]);
    assert_eq!((pruned.kept, pruned.remaining), (2, 2000));
    // A bound below the newest entry keeps it alone.
    let pruned = prune(cache, &Policy { max_bytes: Some(0), ..Policy::default() }, Some(&keep)).unwrap();
    assert_eq!((pruned.kept, pruned.remaining), (1, 1000));
}
