//! Fault injection and request counting, for tests of clients.
//!
//! A client that must survive a flaky Vault (retries, backoff, "does not
//! flood when renew-self is denied") needs a server that misbehaves on
//! demand and counts what it was sent. A [`FaultRules`] picks matching
//! requests (path prefix, methods, the next N only) and answers a share of
//! them with 500/503/429 in Vault's own bodies, optionally after a delay;
//! [`DevServerStats`] counts every answer by path and status. Both live
//! outside the state lock: they are checked before a request touches state.
//! An opt-in request log ([`SeenRequest`]) keeps each request as the server
//! resolved it, so a test can prove what actually arrived (the sandbox's
//! path property: a granted call reaches exactly the granted path).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

/// Which requests to disturb and how. Matching requests are those whose
/// path (after `/v1/`) starts with `path_prefix` and whose method is in
/// `methods` (empty: all). sys/health is never disturbed unless
/// `path_prefix` names it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultRules {
    /// Share of matching requests that are disturbed, 0.0 to 1.0.
    pub rate: f64,
    /// Statuses to answer with, picked at random (503: "Vault is sealed",
    /// 429: the rate-limit body). Empty: disturbed requests are only delayed.
    pub statuses: Vec<u16>,
    /// Added before answering a disturbed request.
    pub delay: Option<Duration>,
    /// Only paths starting with this (with or without a leading `/v1/`).
    pub path_prefix: Option<String>,
    /// Only these methods ("GET", "LIST", ...); empty means all.
    pub methods: Vec<String>,
    /// Only the next N matching requests are candidates; then the rules are
    /// spent.
    pub remaining: Option<u32>,
}

/// What the server has answered so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevServerStats {
    /// Every request answered, injected faults included.
    pub total: u64,
    /// Answers that were injected faults.
    pub faults_injected: u64,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests by path (after `/v1/`, no query string).
    pub by_path: BTreeMap<String, u64>,
    /// Requests by HTTP method as sent (`GET`, `POST`, `LIST`, …), so a
    /// test can tell reads from writes (the plugin harness's plan check).
    pub by_method: BTreeMap<String, u64>,
}

impl DevServerStats {
    /// How many requests were made to `path` (with or without `/v1/`).
    pub fn requests(&self, path: &str) -> u64 {
        self.by_path.get(normalize(path)).copied().unwrap_or(0)
    }
}

/// One request as it arrived: the path the server acts on (percent-decoded,
/// after `/v1/`), the path as sent on the wire, and the query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    /// Decoded, without `/v1/`: what routing and policies see.
    pub path: String,
    /// The URL's path exactly as sent (still encoded, with `/v1/`).
    pub raw_path: String,
    pub query: Option<String>,
}

/// The most requests the log keeps; later ones are dropped (and counted in
/// [`DevServerStats::total`] as always). Bounded so a forgotten log cannot
/// grow without end.
pub const MAX_LOGGED_REQUESTS: usize = 100_000;

/// What to do to one request.
pub(crate) struct Disturbance {
    pub delay: Option<Duration>,
    pub status: Option<u16>,
}

/// The rules in force and the counters.
#[derive(Default)]
pub(crate) struct Faults {
    rules: Mutex<Option<FaultRules>>,
    stats: Mutex<DevServerStats>,
    /// `Some` while the request log is on.
    log: Mutex<Option<Vec<SeenRequest>>>,
}

fn normalize(path: &str) -> &str {
    let path = path.trim_start_matches('/');
    path.strip_prefix("v1/").unwrap_or(path)
}

impl Faults {
    pub fn new(rules: Option<FaultRules>) -> Self {
        Self { rules: Mutex::new(rules), stats: Mutex::default(), log: Mutex::default() }
    }

    pub fn start_log(&self) {
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    pub fn take_log(&self) -> Vec<SeenRequest> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Keep one request if the log is on.
    pub fn log(&self, request: impl FnOnce() -> SeenRequest) {
        if let Some(log) = self.log.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
            && log.len() < MAX_LOGGED_REQUESTS
        {
            log.push(request());
        }
    }

    pub fn set_rules(&self, rules: Option<FaultRules>) {
        *self.rules.lock().unwrap_or_else(|p| p.into_inner()) = rules;
    }

    pub fn stats(&self) -> DevServerStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether (and how) to disturb a request for `path` (after `/v1/`).
    pub fn decide(&self, method: &str, path: &str) -> Option<Disturbance> {
        let mut guard = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let rules = guard.as_mut()?;
        let prefix = rules.path_prefix.as_deref().map(normalize).unwrap_or("");
        let health_targeted = !prefix.is_empty() && path.starts_with(prefix);
        if path.starts_with("sys/health") && !health_targeted {
            return None;
        }
        if !path.starts_with(prefix) {
            return None;
        }
        if !rules.methods.is_empty() && !rules.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return None;
        }
        match &mut rules.remaining {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        let mut rng = rand::rng();
        if rules.rate <= 0.0 || (rules.rate < 1.0 && !rng.random_bool(rules.rate)) {
            return None;
        }
        let status = match rules.statuses.len() {
            0 => None,
            n => Some(rules.statuses[rng.random_range(0..n)]),
        };
        Some(Disturbance { delay: rules.delay, status })
    }

    /// Count one answer.
    pub fn record(&self, method: &str, path: &str, status: u16, injected: bool) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.total += 1;
        *stats.by_method.entry(method.to_ascii_uppercase()).or_default() += 1;
        if injected {
            stats.faults_injected += 1;
        }
        *stats.by_status.entry(status).or_default() += 1;
        if let Some(count) = stats.by_path.get_mut(path) {
            *count += 1;
        } else {
            stats.by_path.insert(path.to_owned(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_fault_rules_pick_matching_requests() {
        let rules = FaultRules {
            rate: 1.0,
            statuses: vec![503],
            path_prefix: Some("/v1/secret/".into()),
            methods: vec!["get".into()],
            remaining: Some(2),
            ..Default::default()
        };
        let faults = Faults::new(Some(rules));
        assert!(faults.decide("POST", "secret/data/a").is_none(), "method filter");
        assert!(faults.decide("GET", "sys/mounts").is_none(), "path filter");
        assert_eq!(faults.decide("GET", "secret/data/a").and_then(|d| d.status), Some(503));
        assert!(faults.decide("GET", "secret/data/a").is_some());
        assert!(faults.decide("GET", "secret/data/a").is_none(), "spent after two");
        faults.set_rules(Some(FaultRules { rate: 1.0, statuses: vec![500], ..Default::default() }));
        assert!(faults.decide("GET", "sys/health").is_none(), "health is spared");
        assert!(faults.decide("GET", "anything").is_some());
        faults.set_rules(Some(FaultRules { rate: 1.0, path_prefix: Some("sys/health".into()), ..Default::default() }));
        assert!(faults.decide("GET", "sys/health").is_some(), "unless targeted");
        faults.record("GET", "sys/health", 200, false);
        faults.record("get", "sys/health", 503, true);
        let stats = faults.stats();
        assert_eq!((stats.total, stats.faults_injected, stats.requests("/v1/sys/health")), (2, 1, 2));
        assert_eq!(stats.by_method.get("GET"), Some(&2));
    }
}
