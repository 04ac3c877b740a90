//! The on-disk compilation cache: the first load of a plugin compiles it and
//! writes the compiled code under `cache_dir`; a later load (a fresh runtime,
//! as after a restart) takes the code from that file instead of compiling.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rotator_core::plugin::{Runtime, RuntimeOptions};
use rotator_test_artifacts::build_artifact;

fn options(cache: &Path) -> RuntimeOptions {
    RuntimeOptions { max_concurrent_runs: 4, cache_dir: Some(cache.to_owned()) }
}

/// The cache's files, sorted.
fn cache_files(cache: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The file holding the compiled code of the plugin with `sha256`.
fn entry_of(cache: &Path, sha256: &str) -> PathBuf {
    let found: Vec<PathBuf> = cache_files(cache)
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(sha256))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn a_second_load_takes_the_compiled_plugin_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    let first = Runtime::new(options(&cache)).unwrap();
    let kv = first.load_builtin("kv-random", None).unwrap();
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache holds code the daemon will run: only its user may write it");
    let entry = entry_of(&cache, kv.sha256());
    assert_eq!(cache_files(&cache), vec![entry.clone()], "one file, no leftovers");
    assert!(entry.extension().is_some_and(|e| e == "cwasm"), "{entry:?}");
    let written = std::fs::metadata(&entry).unwrap();

    // A fresh runtime finds the file and keeps it: a compile would have
    // written a new file and renamed it over this one (a new inode).
    let second = Runtime::new(options(&cache)).unwrap();
    let again = second.load_builtin("kv-random", None).unwrap();
    assert_eq!((again.sha256(), again.label()), (kv.sha256(), kv.label()));
    let kept = std::fs::metadata(&entry).unwrap();
    assert_eq!((kept.ino(), kept.mtime(), kept.mtime_nsec()), (written.ino(), written.mtime(), written.mtime_nsec()));
    assert_eq!(cache_files(&cache), vec![entry.clone()]);

    // And the file is what runs: with another plugin's compiled code put in
    // its place, loading kv-random gives that plugin (which is why the cache
    // directory is private to the daemon's user).
    let spin = second.load_file(&build_artifact("fixture_spin"), None).unwrap();
    // Replaced by a rename, as the runtime itself writes entries: the loaded
    // plugins map their entries, so rewriting one in place would pull the
    // code from under them (SIGBUS).
    let swap = dir.path().join("swap");
    std::fs::copy(entry_of(&cache, spin.sha256()), &swap).unwrap();
    std::fs::rename(&swap, &entry).unwrap();
    let swapped = Runtime::new(options(&cache)).unwrap().load_builtin("kv-random", None).unwrap();
    assert_eq!(swapped.info().name, "fixture-spin");
    assert_eq!(swapped.sha256(), kv.sha256(), "identity still comes from the bytes");
}
