//! Plugin files on disk: read with a size cap, and, for plugins named by
//! untrusted input, found only inside the configured plugin directories.
//!
//! The cap ([`MAX_PLUGIN_BYTES`]) is checked twice: on the size the file
//! system reports and by a read that stops one byte past the cap, because
//! some files report a size of 0 or a false one (`/proc/self/pagemap`) and
//! a file can grow while it is read. Only regular files are opened: a FIFO
//! would block the reader forever, a device never ends.
//!
//! Jobs added at run time (through the API) name their plugin as untrusted
//! input, so [`find_in_dirs`] accepts only readable regular files inside
//! the configured plugin directories, after resolving every symlink and
//! `..`, and answers one and the same error for every refusal: a caller
//! learns nothing about files outside those directories.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::LoadError;

/// The largest plugin file rotator reads (64 MiB). Our plugins are a few
/// hundred KiB to a few MiB; the cap only has to stop a mistaken or hostile
/// path from filling the daemon's memory.
pub const MAX_PLUGIN_BYTES: u64 = 64 * 1024 * 1024;

/// A regular file's bytes, at most `cap` of them.
pub(super) fn read_capped(path: &Path, cap: u64, origin: &str) -> Result<Vec<u8>, LoadError> {
    let read_error = |e: std::io::Error| LoadError::Read { origin: origin.to_owned(), message: e.to_string() };
    let too_large = || LoadError::TooLarge { origin: origin.to_owned(), limit: cap };
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(LoadError::NotAFile { origin: origin.to_owned() });
    }
    if meta.len() > cap {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    // And again on what was opened, in case the path changed meanwhile.
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(LoadError::NotAFile { origin: origin.to_owned() });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Where a plugin named by untrusted input (a job added through the API) may
/// be loaded from: `name`, relative to one of `dirs` (tried in order), must
/// resolve, symlinks and `..` included, to a readable regular file inside
/// that directory. Returns its canonical path, which is UTF-8 (the config
/// parser takes paths as text, so no other could be named). Every refusal is the same
/// [`LoadError::NotInPluginDirs`], so the answer tells nothing about files
/// outside the directories.
pub fn find_in_dirs(dirs: &[PathBuf], name: &str) -> Result<PathBuf, LoadError> {
    let found = dirs.iter().find_map(|dir| {
        let dir = std::fs::canonicalize(dir).ok()?;
        let candidate = std::fs::canonicalize(dir.join(name)).ok()?;
        let inside = candidate.starts_with(&dir) && candidate != dir && candidate.to_str().is_some();
        let readable =
            std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) && std::fs::File::open(&candidate).is_ok();
        (inside && readable).then_some(candidate)
    });
    // Echo at most a bounded part of the caller's own input.
    let shown: String = name.chars().take(200).collect();
    found.ok_or(LoadError::NotInPluginDirs { name: shown })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::*;

    /// ```text
    /// root/plugins/ok.wasm, sub/inner.wasm, fifo, link-in -> ok.wasm,
    ///              link-out -> ../outside/secret.wasm, dir-out -> ../outside
    /// root/outside/secret.wasm
    /// ```
    fn layout() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path().join("plugins");
        std::fs::create_dir_all(plugins.join("sub")).unwrap();
        std::fs::create_dir_all(root.path().join("outside")).unwrap();
        for file in ["plugins/ok.wasm", "plugins/sub/inner.wasm", "outside/secret.wasm"] {
            std::fs::write(root.path().join(file), b"\0asm").unwrap();
        }
        symlink("ok.wasm", plugins.join("link-in")).unwrap();
        symlink("../outside/secret.wasm", plugins.join("link-out")).unwrap();
        symlink("../outside", plugins.join("dir-out")).unwrap();
        let fifo = std::process::Command::new("mkfifo").arg(plugins.join("fifo")).status().unwrap();
        assert!(fifo.success());
        (root, plugins)
    }

    fn refusal(name: &str) -> String {
        LoadError::NotInPluginDirs { name: name.to_owned() }.to_string()
    }

    #[test]
    fn only_readable_files_inside_a_plugin_dir_are_found() {
        let (root, plugins) = layout();
        let dirs = [root.path().join("missing-dir"), plugins.clone()];
        let canonical = std::fs::canonicalize(&plugins).unwrap();
        assert_eq!(find_in_dirs(&dirs, "ok.wasm").unwrap(), canonical.join("ok.wasm"));
        assert_eq!(find_in_dirs(&dirs, "sub/../sub/inner.wasm").unwrap(), canonical.join("sub/inner.wasm"));
        assert_eq!(find_in_dirs(&dirs, "link-in").unwrap(), canonical.join("ok.wasm"));
        let absolute = canonical.join("ok.wasm");
        assert_eq!(find_in_dirs(&dirs, absolute.to_str().unwrap()).unwrap(), absolute);

        // Missing, outside (by `..`, absolute path, symlinked file or
        // directory), not a file, the directory itself: one answer each.
        let secret = root.path().join("outside/secret.wasm");
        let refused = [
            "missing.wasm",
            "../outside/secret.wasm",
            "sub/../../outside/secret.wasm",
            secret.to_str().unwrap(),
            "link-out",
            "dir-out/secret.wasm",
            "fifo",
            "sub",
            ".",
            "",
            "/proc/self/pagemap",
            "/etc/passwd",
            "/dev/zero",
        ];
        for name in refused {
            let err = find_in_dirs(&dirs, name).unwrap_err();
            assert_eq!(err.to_string(), refusal(name), "{name}");
        }
        assert!(find_in_dirs(&[], "ok.wasm").is_err(), "no plugin dirs: no files at all");
    }

    /// Paths built from hostile pieces: whatever comes back is a regular
    /// file inside the directory, and every refusal reads the same.
    fn check_paths(runner: &mut TestRunner) {
        let (root, plugins) = layout();
        let canonical = std::fs::canonicalize(&plugins).unwrap();
        let outside = root.path().join("outside").to_str().unwrap().to_owned();
        let piece = prop::sample::select(vec![
            "..",
            ".",
            "",
            "ok.wasm",
            "sub",
            "inner.wasm",
            "link-in",
            "link-out",
            "dir-out",
            "secret.wasm",
            "fifo",
            "missing.wasm",
            "outside",
            "plugins",
            "%2e%2e",
            "ok.wasm\0",
            "\\..",
        ]);
        let name = (any::<bool>(), prop::collection::vec(piece, 0..6)).prop_map(move |(absolute, pieces)| {
            let joined = pieces.join("/");
            if absolute { format!("{outside}/{joined}") } else { joined }
        });
        let dirs = [plugins];
        runner
            .run(&name, |name| {
                match find_in_dirs(&dirs, &name) {
                    Ok(found) => {
                        prop_assert!(found.starts_with(&canonical) && found != canonical, "{name} -> {found:?}");
                        prop_assert!(std::fs::symlink_metadata(&found).unwrap().is_file(), "{name}");
                    }
                    Err(e) => prop_assert_eq!(e.to_string(), refusal(&name)),
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn hostile_paths_never_leave_the_plugin_dir_fixed_seed() {
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]);
        check_paths(&mut TestRunner::new_with_rng(Config::with_cases(10_000), rng));
    }

    #[test]
    fn hostile_paths_never_leave_the_plugin_dir_random_seed() {
        check_paths(&mut TestRunner::new(Config::with_cases(10_000)));
    }

    #[test]
    fn reads_are_capped_and_only_regular_files_are_read() {
        let (root, plugins) = layout();
        let origin = "test";
        assert_eq!(read_capped(&plugins.join("ok.wasm"), 4, origin).unwrap(), b"\0asm");
        let big = root.path().join("big.wasm");
        std::fs::write(&big, [0u8; 5]).unwrap();
        assert!(matches!(read_capped(&big, 4, origin), Err(LoadError::TooLarge { limit: 4, .. })));
        for not_a_file in [plugins.join("fifo"), plugins.join("sub"), PathBuf::from("/dev/zero")] {
            let err = read_capped(&not_a_file, 4, origin).unwrap_err();
            assert!(matches!(err, LoadError::NotAFile { .. }), "{not_a_file:?}: {err}");
        }
        // Reports a size of 0, yet reads on for gigabytes: the bounded read
        // stops at the cap (where the kernel, which serves pagemap only in
        // 8-byte entries, refuses the odd-sized last read of `cap + 1`).
        let pagemap = read_capped(Path::new("/proc/self/pagemap"), 1 << 20, origin);
        assert!(matches!(pagemap, Err(LoadError::TooLarge { .. } | LoadError::Read { .. })), "{pagemap:?}");
        // A file whose reported size is below the cap but whose content is
        // not: /proc/self/maps reports 0 and holds a few KiB.
        let maps = read_capped(Path::new("/proc/self/maps"), 64, origin);
        assert!(matches!(maps, Err(LoadError::TooLarge { limit: 64, .. })), "{maps:?}");
        assert!(matches!(read_capped(&root.path().join("nope"), 4, origin), Err(LoadError::Read { .. })));
    }
}
