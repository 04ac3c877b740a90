//! `[daemon] replicas`: run several daemons on one config, sharing the jobs.
//!
//! ```toml
//! [daemon]
//! replicas = { name = "rotator-a", lease_ttl = "15s" }
//! ```
//!
//! With the section, the daemons coordinate through a record in Vault KV
//! (beside the job records): each owns a share of the jobs under a lease
//! it renews by heartbeat, and a replica that stops renewing loses its
//! share to the others once `lease_ttl` passes. Without it a daemon
//! rotates every job of its config (one replica). The design and its
//! guarantees are in docs/architecture.md ("Replicas").

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::units::Bounds;

/// `lease_ttl`: long enough for a heartbeat to cross a slow Vault a few
/// times, short enough that a takeover is not an outage.
pub const LEASE_TTL: Bounds =
    Bounds { key: "daemon.replicas.lease_ttl", min: Duration::from_secs(1), max: Duration::from_secs(600) };
const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// A name is shown to operators and written into Vault records.
const MAX_NAME: usize = 63;

/// `[daemon] replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicasConfig {
    /// How this replica shows on `/status` and in the coordination record
    /// (a random suffix per process is added, so a restarted replica is a
    /// new member). Default: `$HOSTNAME`, or `rotator`.
    #[serde(default, deserialize_with = "name")]
    pub name: Option<String>,
    /// How long a replica's ownership outlives its last heartbeat (1 s to
    /// 10 min, default 15 s). Heartbeats go every third of it.
    #[serde(default = "default_ttl", deserialize_with = "ttl")]
    pub lease_ttl: Duration,
}

fn default_ttl() -> Duration {
    DEFAULT_TTL
}

fn ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    LEASE_TTL.parse(&s).map_err(serde::de::Error::custom)
}

fn name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    check_name(&s).map(|()| Some(s)).map_err(serde::de::Error::custom)
}

/// A replica name: 1 to 63 of `A-Z a-z 0-9 . _ -`, so it is safe in a
/// record, a log line and a URL alike.
pub fn check_name(s: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if s.is_empty() || s.len() > MAX_NAME || !s.chars().all(ok) {
        return Err(format!(
            "daemon.replicas.name: `{}` is not 1 to {MAX_NAME} of A-Z a-z 0-9 . _ -",
            s.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        replicas: ReplicasConfig,
    }

    fn parse(text: &str) -> Result<ReplicasConfig, String> {
        toml::from_str::<Doc>(text).map(|d| d.replicas).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn defaults_and_bounds() {
        let c = parse("replicas = {}").unwrap();
        assert_eq!(c, ReplicasConfig { name: None, lease_ttl: DEFAULT_TTL });
        let c = parse("replicas = { name = \"a-1\", lease_ttl = \"3s\" }").unwrap();
        assert_eq!(c.lease_ttl, Duration::from_secs(3));
        assert!(parse("replicas = { lease_ttl = \"0s\" }").unwrap_err().contains("daemon.replicas.lease_ttl"));
        assert!(parse("replicas = { lease_ttl = \"1h\" }").unwrap_err().contains("daemon.replicas.lease_ttl"));
        assert!(parse("replicas = { owner = \"x\" }").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        /// Whatever is accepted is short and made only of the safe characters.
        #[test]
        fn names_accepted_are_safe(s in "\\PC{0,80}") {
            if check_name(&s).is_ok() {
                prop_assert!(!s.is_empty() && s.len() <= MAX_NAME);
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            }
        }
    }
}
