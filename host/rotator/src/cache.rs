//! `rotator plugin cache ls|prune`: the compilation cache as an operator
//! sees it. What an entry is, the bound and the safe removal live in
//! [`rotator_core::plugin::cache`]; this module picks the directory and
//! prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use rotator_core::plugin::cache::{self, Entry, Kind, Policy, Skipped};

#[derive(Subcommand)]
pub enum CacheCommand {
    /// List the compiled plugins in the cache: size, last use, sha256, which
    /// built-in plugin it is (a file is known by its sha256), and the total.
    Ls {
        #[command(flatten)]
        dir: CacheDir,
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove entries: every one (--all), those unused for longer than
    /// --older-than, then the least recently used until the total is at
    /// most --max-size. Without options, hold the cache to its automatic
    /// bound ($ROTATOR_CACHE_MAX_SIZE, default 1GiB). Only files rotator
    /// wrote are removed; symlinks and other files are left alone.
    Prune {
        #[command(flatten)]
        dir: CacheDir,
        /// Remove least recently used entries until the cache is at most this (e.g. 500MiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Remove entries no load has used for longer than this (e.g. 30d).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<Duration>,
        /// Remove every entry.
        #[arg(long)]
        all: bool,
    },
}

/// Which cache: the one the daemon and `plugin test` use by default.
#[derive(clap::Args)]
pub struct CacheDir {
    /// The cache directory (a daemon's `[daemon] cache_dir`). Default
    /// $ROTATOR_CACHE_DIR, else $XDG_CACHE_HOME/rotator, else ~/.cache/rotator.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl CacheDir {
    fn resolve(&self) -> anyhow::Result<PathBuf> {
        self.dir
            .clone()
            .or_else(rotator_core::plugin::default_cache_dir)
            .ok_or_else(|| anyhow!("no cache directory: pass --dir, or set ROTATOR_CACHE_DIR, XDG_CACHE_HOME or HOME"))
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    rotator_core::config::units::parse_bytes(s).map(|b| b as u64).map_err(|e| e.to_string())
}

pub fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Ls { dir, json } => ls(&dir.resolve()?, json),
        CacheCommand::Prune { dir, max_size, older_than, all } => {
            let policy = if max_size.is_none() && older_than.is_none() && !all {
                Policy { max_bytes: cache::max_bytes()?, ..Policy::default() }
            } else {
                Policy { all, older_than, max_bytes: max_size }
            };
            prune(&dir.resolve()?, &policy)
        }
    }
}

fn ls(dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let listing = cache::list(dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("cache: {} (bound: {})", listing.dir.display(), bound()?);
    if !listing.entries.is_empty() {
        println!("{:>10}  {:>12}  {:<16}  plugin", "size", "last used", "sha256");
    }
    let now = SystemTime::now();
    for e in &listing.entries {
        println!("{:>10}  {:>12}  {:<16}  {}", size(e.size), ago(now, e.last_used), short(&e.sha256), who(e));
    }
    println!("{} entries, {}", listing.entries.len(), size(listing.total()));
    skipped(&listing.skipped);
    Ok(ExitCode::SUCCESS)
}

fn prune(dir: &std::path::Path, policy: &Policy) -> anyhow::Result<ExitCode> {
    let pruned = cache::prune(dir, policy, None).with_context(|| format!("pruning {}", dir.display()))?;
    for e in &pruned.removed {
        println!("removed {:>10}  {:<16}  {}", size(e.size), short(&e.sha256), who(e));
    }
    println!(
        "removed {} entries ({}); {} left ({})",
        pruned.removed.len(),
        size(pruned.freed()),
        pruned.kept,
        size(pruned.remaining)
    );
    skipped(&pruned.skipped);
    Ok(ExitCode::SUCCESS)
}

fn skipped(skipped: &[Skipped]) {
    for s in skipped {
        println!("left alone: {} ({})", s.file.display(), s.why);
    }
}

fn bound() -> anyhow::Result<String> {
    Ok(match cache::max_bytes()? {
        Some(max) => format!("{} after each compile, ${}", size(max), cache::MAX_SIZE_ENV),
        None => format!("none, ${}=off", cache::MAX_SIZE_ENV),
    })
}

fn who(e: &Entry) -> &str {
    match (&e.plugin, e.kind) {
        (Some(name), _) => name,
        (None, Kind::Partial) => "(partial: being written, or left by an interrupted compile)",
        (None, Kind::Compiled) => "(a plugin file: `rotator plugin inspect FILE` shows its sha256)",
    }
}

fn short(sha256: &str) -> &str {
    &sha256[..sha256.len().min(16)]
}

/// `1.5 MiB`, `312 B`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let (mut value, mut unit) = (bytes as f64 / 1024.0, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long ago `then` was, to the two largest units (`3d 4h ago`).
fn ago(now: SystemTime, then: SystemTime) -> String {
    let s = now.duration_since(then).unwrap_or_default().as_secs();
    let shown = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    };
    format!("{shown} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_as_people_write_them() {
        assert_eq!(size(312), "312 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(35_400_000), "33.8 MiB");
        assert_eq!(size(1 << 30), "1.0 GiB");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago_s = |s| ago(now, now - Duration::from_secs(s));
        assert_eq!(
            [ago_s(5), ago_s(300), ago_s(3 * 3600 + 120), ago_s(2 * 86400 + 7200)],
            ["5s ago", "5m ago", "3h 2m ago", "2d 2h ago"]
        );
        assert_eq!(ago(now, now + Duration::from_secs(9)), "0s ago", "a clock step back is not negative");
    }
}
