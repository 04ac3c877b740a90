//! The compilation cache on disk: what is in it, how large it may grow, and
//! how it is pruned.
//!
//! [`super::Runtime`] writes one `<sha256>-<engine hash>.cwasm` per compiled
//! component (tens of MiB for a Python or JavaScript one) and nothing else
//! (written as `….tmp<pid>`, then renamed). An entry is known by its
//! component's sha256, which [`list`] matches against this binary's
//! built-in plugins. Every engine upgrade and every rebuilt plugin adds
//! files, so the cache is bounded: after each compile the least recently
//! used entries go until the total is under [`max_bytes`] (default
//! [`DEFAULT_MAX_BYTES`], `$ROTATOR_CACHE_MAX_SIZE`). `rotator plugin cache
//! ls|prune` use [`list`] and [`prune`].
//!
//! Deleting files is the dangerous part, so this module only ever removes
//! regular files whose names it wrote, found directly in the canonical
//! cache directory: a symlink (even one named like an entry) is listed as
//! skipped and never followed or removed, a subdirectory is never entered,
//! and a file is checked again (`lstat`) just before it is unlinked.
//! "Last used" is the file's access time, which a cache hit sets explicitly
//! (a `noatime` mount does not update it by itself); the modification time
//! stays the time it was compiled.

use std::fs::{File, FileTimes};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The cache's default bound: 1 GiB, about 30 compiled Python plugins.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Sets the bound: a size (`512MiB`, `2GiB`, `1048576`) or `off`.
pub const MAX_SIZE_ENV: &str = "ROTATOR_CACHE_MAX_SIZE";
/// A half-written entry this old belongs to a process that died writing it.
pub const STALE_PARTIAL: Duration = Duration::from_secs(3600);

/// Why the cache could not be read or pruned, or a bound not understood.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error("removing {}: {source}", file.display())]
    Remove { file: PathBuf, source: io::Error },
    #[error("${MAX_SIZE_ENV}: invalid size `{0}` (a size such as 512MiB or 2GiB, or `off`)")]
    Bound(String),
}

/// What a cache file is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A compiled component, `<sha256>-<hash>.cwasm`.
    Compiled,
    /// A compile being written, or left by a process that died writing it
    /// (`<sha256>-<hash>.tmp<pid>`).
    Partial,
}

/// One cache entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The file, in the canonical cache directory.
    pub file: PathBuf,
    pub kind: Kind,
    /// The compiled component's sha256 (from the name).
    pub sha256: String,
    /// Bytes on disk.
    pub size: u64,
    /// When a load last used it (or when it was written).
    #[serde(with = "humantime_serde_compat")]
    pub last_used: SystemTime,
    /// `builtin:<name>` if the component is one of this binary's built-in
    /// plugins; a plugin file is known by its sha256 alone (`rotator plugin
    /// inspect FILE` shows a file's).
    pub plugin: Option<String>,
}

/// A file in the cache directory that is not an entry, and why it is left alone.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub file: PathBuf,
    pub why: &'static str,
}

/// The cache directory's contents.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The canonical directory (as given, if it does not exist yet).
    pub dir: PathBuf,
    /// Least recently used first.
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
}

impl Listing {
    /// Bytes the entries take.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// What to remove. Each rule adds to the others; a stale partial entry
/// ([`STALE_PARTIAL`]) always goes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Every entry.
    pub all: bool,
    /// Entries not used for longer than this.
    pub older_than: Option<Duration>,
    /// Then the least recently used, until the total is at most this.
    pub max_bytes: Option<u64>,
}

/// What [`prune`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub removed: Vec<Entry>,
    /// Bytes the remaining entries take.
    pub remaining: u64,
    pub kept: usize,
    pub skipped: Vec<Skipped>,
}

impl Pruned {
    /// Bytes freed.
    pub fn freed(&self) -> u64 {
        self.removed.iter().map(|e| e.size).sum()
    }
}

/// The automatic bound: `$ROTATOR_CACHE_MAX_SIZE`, else [`DEFAULT_MAX_BYTES`];
/// `None` if set to `off`.
pub fn max_bytes() -> Result<Option<u64>, CacheError> {
    match std::env::var(MAX_SIZE_ENV) {
        Ok(v) => parse_bound(&v),
        Err(_) => Ok(Some(DEFAULT_MAX_BYTES)),
    }
}

/// A bound as written: bytes with an optional unit (`B`, `KiB`, `MiB`,
/// `GiB`, as in the config), or `off` for none. (Parsed here, not by
/// `config::units`, which sits above this module.)
pub fn parse_bound(text: &str) -> Result<Option<u64>, CacheError> {
    const UNITS: [(&str, u64); 4] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)];
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (digits, unit) = UNITS.iter().find_map(|(u, m)| t.strip_suffix(u).map(|d| (d, *m))).unwrap_or((t, 1));
    let digits = digits.trim_end();
    let bytes = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse::<u64>().ok()?.checked_mul(unit))
        .flatten();
    bytes.map(Some).ok_or_else(|| CacheError::Bound(text.to_owned()))
}

/// The name's kind and sha256, if it is a cache file the runtime writes.
fn parse_name(name: &str) -> Option<(Kind, &str)> {
    let (stem, ext) = name.split_once('.')?;
    let (sha, hash) = stem.split_once('-')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(sha, 64) || !hex(hash, 16) {
        return None;
    }
    if ext == "cwasm" {
        return Some((Kind::Compiled, sha));
    }
    let pid = ext.strip_prefix("tmp")?;
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some((Kind::Partial, sha))
}

/// When `meta` was last used: the later of its access and modification times.
fn last_used(meta: &std::fs::Metadata) -> SystemTime {
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    meta.accessed().map_or(modified, |a| a.max(modified))
}

/// The cache at `dir`: every entry, least recently used first, and every
/// other file left alone. A directory that does not exist is empty.
pub fn list(dir: &Path) -> Result<Listing, CacheError> {
    let dir_err = |source| CacheError::Dir { dir: dir.to_owned(), source };
    let canonical = match dir.canonicalize() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Listing { dir: dir.to_owned(), entries: Vec::new(), skipped: Vec::new() });
        }
        Err(e) => return Err(dir_err(e)),
    };
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for item in std::fs::read_dir(&canonical).map_err(dir_err)? {
        let item = item.map_err(dir_err)?;
        let file = canonical.join(item.file_name());
        // DirEntry::file_type and metadata do not follow symlinks.
        let Ok(meta) = item.metadata() else { continue };
        let skip = |why| Skipped { file: file.clone(), why };
        if meta.file_type().is_symlink() {
            skipped.push(skip("a symlink: never followed or removed"));
            continue;
        }
        if !meta.is_file() {
            skipped.push(skip("not a regular file"));
            continue;
        }
        let name = item.file_name();
        match name.to_str().and_then(parse_name) {
            None => skipped.push(skip("not a file rotator writes")),
            Some((kind, sha)) => entries.push(Entry {
                sha256: sha.to_owned(),
                kind,
                size: meta.len(),
                last_used: last_used(&meta),
                plugin: None,
                file,
            }),
        }
    }
    if !entries.is_empty() {
        let builtins: Vec<(String, &str)> =
            crate::builtin::BUILTINS.iter().map(|b| (hex::encode(Sha256::digest(b.wasm)), b.name)).collect();
        for e in &mut entries {
            e.plugin = builtins
                .iter()
                .find(|(sha, _)| e.sha256.eq_ignore_ascii_case(sha))
                .map(|(_, n)| format!("builtin:{n}"));
        }
    }
    entries.sort_by(|a, b| (a.last_used, &a.file).cmp(&(b.last_used, &b.file)));
    Ok(Listing { dir: canonical, entries, skipped })
}

/// Which of `entries` (least recently used first) `policy` removes at
/// `now`, never `keep`: the indices, in order.
pub fn select(entries: &[Entry], policy: &Policy, keep: Option<&Path>, now: SystemTime) -> Vec<usize> {
    let idle = |e: &Entry| now.duration_since(e.last_used).unwrap_or_default();
    let mut chosen = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        chosen[i] = Some(e.file.as_path()) != keep
            && (policy.all
                || policy.older_than.is_some_and(|d| idle(e) > d)
                || (e.kind == Kind::Partial && idle(e) > STALE_PARTIAL));
    }
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = entries.iter().zip(&chosen).filter(|(_, c)| !**c).map(|(e, _)| e.size).sum();
        for (i, e) in entries.iter().enumerate() {
            if total <= max {
                break;
            }
            // A partial entry that is not stale may be a compile in flight.
            if !chosen[i] && e.kind == Kind::Compiled && Some(e.file.as_path()) != keep {
                chosen[i] = true;
                total -= e.size;
            }
        }
    }
    (0..entries.len()).filter(|&i| chosen[i]).collect()
}

/// Remove what `policy` selects from the cache at `dir` (never `keep`).
/// An entry another process removed first counts as removed.
pub fn prune(dir: &Path, policy: &Policy, keep: Option<&Path>) -> Result<Pruned, CacheError> {
    let listing = list(dir)?;
    let chosen = select(&listing.entries, policy, keep, SystemTime::now());
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for (i, entry) in listing.entries.into_iter().enumerate() {
        if !chosen.contains(&i) {
            kept.push(entry);
            continue;
        }
        remove_file_in(&listing.dir, &entry.file)?;
        removed.push(entry);
    }
    let remaining = kept.iter().map(|e| e.size).sum();
    Ok(Pruned { removed, remaining, kept: kept.len(), skipped: listing.skipped })
}

/// Unlink `file` if it is still a regular file directly in `dir`: checked
/// again here, as it may have been replaced since it was listed. (Unlinking
/// never follows a symlink, so even a swap after this check removes only
/// the link.)
fn remove_file_in(dir: &Path, file: &Path) -> Result<(), CacheError> {
    if file.parent() != Some(dir) {
        return Ok(());
    }
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CacheError::Remove { file: file.to_owned(), source }),
    }
    match std::fs::remove_file(file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(CacheError::Remove { file: file.to_owned(), source: e }),
        _ => Ok(()),
    }
}

/// Note that the entry at `path` was just used (its access time).
pub(super) fn mark_used(path: &Path) {
    if let Ok(f) = File::open(path) {
        let _ = f.set_times(FileTimes::new().set_accessed(SystemTime::now()));
    }
}

/// Whether `path` is an entry a load may use: a regular file, not a symlink.
pub(super) fn usable(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// After writing `written`, hold the cache under the automatic bound.
pub(super) fn enforce_bound(written: &Path) {
    let Some(dir) = written.parent() else { return };
    let max = match max_bytes() {
        Ok(Some(max)) => max,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "using the default cache bound");
            DEFAULT_MAX_BYTES
        }
    };
    let keep = written.canonicalize().ok();
    let policy = Policy { max_bytes: Some(max), ..Policy::default() };
    match prune(dir, &policy, keep.as_deref()) {
        Ok(p) if !p.removed.is_empty() => tracing::info!(
            removed = p.removed.len(),
            freed_bytes = p.freed(),
            remaining_bytes = p.remaining,
            max_bytes = max,
            "pruned the plugin compilation cache"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not prune the plugin compilation cache"),
    }
}

/// `SystemTime` as RFC 3339 in serialized listings.
mod humantime_serde_compat {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(*t))
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
