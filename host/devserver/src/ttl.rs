//! Lease arithmetic shared by tokens and leases: Vault's `CalculateTTL`.
//!
//! Token creation, token renewal and lease renewal all pick a TTL the same
//! way in Vault (sdk/framework/lease.go): a requested increment, else the
//! backend's TTL, else the mount default; periodic tokens get their period;
//! and nothing may outlive `issue time + max TTL`, where the max TTL is the
//! smallest of the mount's (or system's) maximum, the backend's and the
//! explicit one. Capping is not an error: the answer carries a warning in
//! Vault's words, and only a lease with no time left fails ("past the max
//! TTL, cannot renew"). Keeping this in one place keeps the warnings
//! identical wherever clients meet them.

use std::time::Duration;

use time::OffsetDateTime;

use super::mounts::SYSTEM_DEFAULT_LEASE_TTL;
use super::util::go_duration;

/// What goes into one TTL decision. All values are whole seconds; 0 means
/// "not set".
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TtlInputs {
    /// The increment the client asked for.
    pub increment: u64,
    /// The backend's own TTL (role `token_ttl`, the token's original TTL).
    pub backend_ttl: u64,
    /// Periodic tokens renew to this and ignore the increment.
    pub period: u64,
    /// The backend's max (role `token_max_ttl`).
    pub backend_max: u64,
    /// The token's `explicit_max_ttl`: a hard limit even for periodic tokens.
    pub explicit_max: u64,
    /// The mount's default lease TTL (0: the system's 768h).
    pub mount_default: u64,
    /// The mount's maximum lease TTL (0: the system's 768h).
    pub mount_max: u64,
}

/// The chosen TTL and the warnings to hand back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TtlDecision {
    pub ttl: u64,
    pub warnings: Vec<String>,
}

/// Vault's `CalculateTTL`, with `start` the issue time of the lease (the
/// creation time of a token); times are truncated to the second as Vault
/// does.
pub(crate) fn calculate_ttl(
    inputs: TtlInputs,
    start: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<TtlDecision, String> {
    let nonzero = |v: u64, fallback: u64| if v == 0 { fallback } else { v };
    let mut max_ttl = nonzero(inputs.mount_max, SYSTEM_DEFAULT_LEASE_TTL);
    if inputs.backend_max > 0 && inputs.backend_max < max_ttl {
        max_ttl = inputs.backend_max;
    }
    if inputs.explicit_max > 0 && inputs.explicit_max < max_ttl {
        max_ttl = inputs.explicit_max;
    }
    let mut warnings = Vec::new();
    let start = start.unix_timestamp();
    let now = now.unix_timestamp();
    let (mut ttl, max_valid_until) = if inputs.period > 0 {
        let mut period = inputs.period;
        if period > max_ttl {
            warnings.push(format!(
                "period of {:?} exceeded the effective max_ttl of {:?}; period value is capped accordingly",
                human_duration(period),
                human_duration(max_ttl)
            ));
            period = max_ttl;
        }
        (period, (inputs.explicit_max > 0).then(|| start + inputs.explicit_max as i64))
    } else {
        let ttl = if inputs.increment > 0 {
            inputs.increment
        } else if inputs.backend_ttl > 0 {
            inputs.backend_ttl
        } else {
            nonzero(inputs.mount_default, SYSTEM_DEFAULT_LEASE_TTL)
        };
        (ttl, Some(start + max_ttl as i64))
    };
    if let Some(until) = max_valid_until {
        let left = until - now;
        if left <= 0 {
            return Err("past the max TTL, cannot renew".into());
        }
        let left = left as u64;
        if left < ttl {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                human_duration(ttl),
                human_duration(left)
            ));
            ttl = left;
        }
    }
    Ok(TtlDecision { ttl, warnings })
}

/// Vault's `humanDuration`: Go's duration text without the trailing zero
/// units ("1h", "2m", "59m58s").
pub(crate) fn human_duration(seconds: u64) -> String {
    let mut s = go_duration(Duration::from_secs(seconds));
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(i) = s.find("h0m") {
        s.replace_range(i + 1..i + 3, "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn devserver_human_durations_drop_zero_units() {
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(120), "2m");
        assert_eq!(human_duration(3598), "59m58s");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(2_764_800), "768h");
    }

    #[test]
    fn devserver_increment_is_capped_with_vaults_warning() {
        let inputs = TtlInputs { increment: 3600, explicit_max: 120, ..Default::default() };
        let d = calculate_ttl(inputs, at(0), at(20)).unwrap();
        assert_eq!(d.ttl, 100);
        assert_eq!(
            d.warnings,
            ["TTL of \"1h\" exceeded the effective max_ttl of \"1m40s\"; TTL value is capped accordingly"]
        );
        assert_eq!(calculate_ttl(inputs, at(0), at(120)).unwrap_err(), "past the max TTL, cannot renew");
    }

    #[test]
    fn devserver_periodic_and_defaults() {
        let periodic = TtlInputs { increment: 10, period: 300, ..Default::default() };
        assert_eq!(calculate_ttl(periodic, at(0), at(1_000_000_000)).unwrap().ttl, 300);
        let plain = TtlInputs::default();
        assert_eq!(calculate_ttl(plain, at(0), at(0)).unwrap().ttl, SYSTEM_DEFAULT_LEASE_TTL);
        let backend = TtlInputs { backend_ttl: 60, mount_max: 30, ..Default::default() };
        assert_eq!(calculate_ttl(backend, at(0), at(0)).unwrap().ttl, 30);
    }
}
