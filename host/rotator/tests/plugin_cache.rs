//! The plugin compilation cache through the `rotator` binary: `plugin
//! test` says when it compiles (plainly, when stderr is a pipe), the cache
//! stays under its bound by dropping the least recently used entries,
//! `plugin cache ls|prune` show and empty it, and nothing outside the cache
//! directory is ever read as an entry or deleted, symlinks included.

// Only its clean `rotator` command is used here, not the dev server.
#[allow(dead_code)]
#[path = "support/dev.rs"]
mod dev;

use std::fs::{File, FileTimes};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use dev::rotator;

/// A cache file name for the made-up component `n`.
fn fake_entry(cache: &Path, n: u8) -> PathBuf {
    cache.join(format!("{}-{}.cwasm", hex(n, 64), hex(n, 16)))
}

fn hex(n: u8, len: usize) -> String {
    format!("{n:x}").repeat(len)
}

/// `size` bytes at `path`, last used `idle` ago.
fn aged_file(path: &Path, size: usize, idle: Duration) {
    std::fs::write(path, vec![7u8; size]).unwrap();
    let t = SystemTime::now() - idle;
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

/// `rotator ARGS` with the cache at `cache`, bounded to `bound`.
fn run(cache: &Path, bound: &str, args: &[&str]) -> Output {
    rotator().env("ROTATOR_CACHE_DIR", cache).env("ROTATOR_CACHE_MAX_SIZE", bound).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cache's compiled entries other than the fakes (`a…`, `b…`) and the
/// hostile link (`c…`), with their sizes.
fn real_entries(cache: &Path) -> Vec<(PathBuf, u64)> {
    let mut found: Vec<(PathBuf, u64)> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .filter(|p| !["aaaa", "bbbb", "cccc"].iter().any(|f| p.file_name().unwrap().to_str().unwrap().starts_with(f)))
        .map(|p| {
            let size = std::fs::symlink_metadata(&p).unwrap().len();
            (p, size)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn the_cache_says_when_it_compiles_stays_bounded_and_never_leaves_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let (cache, outside) = (root.path().join("cache"), root.path().join("outside"));
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // Two older entries of 1 MiB, and a hostile symlink named like one.
    let (oldest, older) = (fake_entry(&cache, 0xa), fake_entry(&cache, 0xb));
    aged_file(&oldest, 1 << 20, Duration::from_secs(7200));
    aged_file(&older, 1 << 20, Duration::from_secs(3600));
    let precious = outside.join("precious");
    std::fs::write(&precious, "not the cache's").unwrap();
    let hostile = fake_entry(&cache, 0xc);
    symlink(&precious, &hostile).unwrap();

    // A first test compiles, and says so on two plain lines (stderr is a pipe).
    let test = ["plugin", "test", "kv-random", "--settings", "field = \"password\""];
    let out = run(&cache, "2MiB", &test);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("compiling builtin:kv-random (") && lines[0].ends_with(" MiB)…"), "{stderr}");
    assert!(lines[1].starts_with("compiled builtin:kv-random in ") && lines[1].ends_with(" s"), "{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\x1b'), "no animation in a pipe: {stderr:?}");

    // 2 MiB of fakes and the new entry: the least recently used fake went.
    let entries = real_entries(&cache);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].1 < 1 << 20, "kv-random compiles to under 1 MiB: {entries:?}");
    assert!(!oldest.exists() && older.exists(), "least recently used first");
    assert!(std::fs::symlink_metadata(&hostile).unwrap().file_type().is_symlink(), "the symlink is left alone");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "not the cache's");

    // A second test finds it compiled: nothing on stderr.
    let out = run(&cache, "2MiB", &test);
    assert_eq!((out.status.code(), text(&out.stderr)), (Some(0), String::new()));

    // A symlink put where the entry was is never loaded: it compiles again
    // and the entry becomes a file once more; the link's target is untouched.
    let entry = entries[0].0.clone();
    std::fs::remove_file(&entry).unwrap();
    symlink(&older, &entry).unwrap();
    let out = run(&cache, "off", &test);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("compiling builtin:kv-random ("), "{}", text(&out.stderr));
    assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
    // (Its size, not its bytes: reading it would count as a use.)
    assert_eq!(std::fs::symlink_metadata(&older).unwrap().len(), 1 << 20);

    // ls: each entry with its plugin, the total, and what it left alone.
    let out = run(&cache, "2MiB", &["plugin", "cache", "ls"]);
    let ls = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{ls}");
    assert!(
        ls.contains(&format!("cache: {} (bound: 2.0 MiB after each compile", cache.canonicalize().unwrap().display()))
    );
    assert!(ls.contains("  builtin:kv-random\n"), "{ls}");
    assert!(ls.contains(&format!("{}  (a plugin file", &hex(0xb, 16))), "{ls}");
    assert!(ls.contains("2 entries, "), "{ls}");
    assert!(ls.contains(&format!("left alone: {} (a symlink: never followed or removed)", hostile.display())), "{ls}");
    let json = run(&cache, "2MiB", &["plugin", "cache", "ls", "--json"]);
    let listing: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(listing["entries"].as_array().unwrap().len(), 2);

    // prune: by age, then everything; never the symlink or its target.
    let out = run(&cache, "2MiB", &["plugin", "cache", "prune", "--older-than", "30m"]);
    assert!(text(&out.stdout).contains("removed 1 entries (1.0 MiB); 1 left"), "{}", text(&out.stdout));
    assert!(!older.exists());
    let out = run(&cache, "2MiB", &["plugin", "cache", "prune", "--all", "--dir"]);
    assert_eq!(out.status.code(), Some(2), "--dir needs a value");
    let dir = cache.to_str().unwrap();
    let out = rotator().args(["plugin", "cache", "prune", "--all", "--dir", dir]).output().unwrap();
    assert!(text(&out.stdout).contains("removed 1 entries"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("; 0 left (0 B)"), "{}", text(&out.stdout));
    let left: Vec<PathBuf> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(left, vec![hostile.clone()]);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "not the cache's");

    // A bound that is not a size is refused, naming the variable.
    let out = run(&cache, "lots", &["plugin", "cache", "prune"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("ROTATOR_CACHE_MAX_SIZE"), "{}", text(&out.stderr));
}
