//! What a harness run found: the protocol's steps with their timings and
//! host calls, and one named verdict per conformance check.
//!
//! Everything here is safe to print and to serialize: names, paths,
//! operations, outcomes, durations and redacted error messages. No field can
//! hold a secret value; comparisons of values are made elsewhere and only
//! their verdicts ("differs", "unchanged") reach the report.
//!
//! A failing plugin tends to fail the same way in every run (the walk, each
//! crash point, the rollback check), and its message may be as long as the
//! job's error cap. So the report says each failure once: a check that ran
//! many times lists each distinct failure once, with how many runs it was
//! seen in and which ([`group_repeats`]), and the printed form replaces a failure already
//! shown by a short reference to it.

use std::fmt;

use serde::Serialize;

use rotator_core::plugin::{CallOutcome, Grants, HostCall, VaultGrant};

/// One host call a plugin made, without any value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CallRecord {
    /// `vault.kv-read`, `vault.request`, …
    pub function: String,
    /// The Vault API path (or, for capabilities that have them, the connection).
    pub target: String,
    /// `read`, `write`, `delete` or `list`.
    pub operation: String,
    /// `ok`, `denied`, `failed` or `failed (403)`.
    pub outcome: String,
}

impl From<&HostCall> for CallRecord {
    fn from(c: &HostCall) -> Self {
        let outcome = match &c.outcome {
            CallOutcome::Ok => "ok".to_owned(),
            CallOutcome::Denied => "denied".to_owned(),
            CallOutcome::Failed(Some(status)) => format!("failed ({status})"),
            CallOutcome::Failed(None) => "failed".to_owned(),
        };
        Self { function: c.function.to_owned(), target: c.path.clone(), operation: c.operation.to_owned(), outcome }
    }
}

impl fmt::Display for CallRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} → {}", self.function, self.operation, self.target, self.outcome)
    }
}

/// One action of the recorded protocol run.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// `plan`, `create`, `set`, `test`, `finish`, `rollback`, or the host's
    /// own `read-secret` and `promote`.
    pub step: String,
    /// `plugin` or `host`.
    pub by: &'static str,
    pub duration_ms: f64,
    pub ok: bool,
    /// Why it failed (already redacted).
    pub error: Option<String>,
    /// The failure's kind, as audit records name it: `deadline` (a step
    /// past `--step-timeout`), `trap`, `memory-limit`, `permanent`, …; `host`
    /// for the host's own actions.
    pub failure: Option<&'static str>,
    /// The plugin's host calls during the step, in order.
    pub host_calls: Vec<CallRecord>,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Could not be checked for this plugin; the reason says why.
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }
}

/// The names of the conformance checks, in the order they run.
pub mod names {
    /// set, test and finish are idempotent under one rotation id.
    pub const IDEMPOTENT: &str = "idempotent-steps";
    /// A rotation interrupted at any crash point resumes to a clean end.
    pub const CRASH_RESUME: &str = "crash-resume";
    /// A failing test rolls the rotation back.
    pub const ROLLBACK: &str = "failing-test-rolls-back";
    /// plan changes nothing.
    pub const PLAN: &str = "plan-is-read-only";
    /// Every host call is covered by a declared capability.
    pub const CAPABILITIES: &str = "declared-capabilities";
}

/// One conformance check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// A stable name from [`names`].
    pub name: &'static str,
    pub status: Status,
    /// One line saying why.
    pub reason: String,
    /// Further lines: each violation, or what was covered.
    pub details: Vec<String>,
}

impl CheckResult {
    pub fn pass(name: &'static str, reason: impl Into<String>) -> Self {
        Self { name, status: Status::Pass, reason: reason.into(), details: Vec::new() }
    }

    pub fn skip(name: &'static str, reason: impl Into<String>) -> Self {
        Self { name, status: Status::Skip, reason: reason.into(), details: Vec::new() }
    }

    /// Fail with `violations` as details, or pass with `ok` if there are none.
    pub fn from_violations(name: &'static str, violations: Vec<String>, ok: impl Into<String>) -> Self {
        match violations.len() {
            0 => Self::pass(name, ok),
            1 => Self { name, status: Status::Fail, reason: violations[0].clone(), details: Vec::new() },
            n => Self { name, status: Status::Fail, reason: format!("{n} violations"), details: violations },
        }
    }

    /// Fail with `reason`, and each distinct failure of `runs` (run, why)
    /// once, with how many of `total` runs it was seen in ([`group_repeats`]).
    pub fn failed_runs(
        name: &'static str,
        reason: String,
        runs: Vec<(String, String)>,
        total: usize,
        what: &str,
    ) -> Self {
        Self { name, status: Status::Fail, reason, details: group_repeats(runs, total, what) }
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details.extend(details);
        self
    }
}

/// Who was tested, with what.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    /// `name@version`.
    pub label: String,
    /// `builtin:<name>` or the file.
    pub origin: String,
    pub sha256: String,
    /// What `describe` declared.
    pub capabilities: Vec<VaultGrant>,
    /// The `sql` and `http` capabilities `describe` declared (`*` resolved
    /// through the settings' `connection` and `url`), as
    /// [`other_grants`] shows them.
    pub others: Vec<String>,
}

/// Where the checks ran.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// The in-process dev server's address.
    pub vault: String,
    /// The job's secret (`mount/path`).
    pub secret: String,
    /// The grants every run had.
    pub grants: Vec<VaultGrant>,
    /// The `sql` and `http` grants every run had, shown as `others`.
    pub other_grants: Vec<String>,
    /// The SQL connections every run could reach, as `name → url (admin
    /// from $USER_VAR/$PASS_VAR)`: never a credential.
    pub sql: Vec<String>,
    /// The PostgreSQL the dev server's `database/` mount uses, as
    /// `host:port/db (user …)`; never the password.
    pub postgres: Option<String>,
}

/// The `sql` and `http` grants of `grants`, one line each: `sql NAME`,
/// `http ORIGIN PATHS [METHODS]`.
pub(super) fn other_grants(grants: &Grants) -> Vec<String> {
    let sql = grants.sql.iter().map(|g| format!("sql {}", g.connection));
    let http = grants.http.iter().map(|g| format!("http {} {} [{}]", g.origin, g.paths.join(","), g.methods.join(",")));
    sql.chain(http).collect()
}

/// Everything a harness run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: PluginSummary,
    pub environment: Environment,
    /// The protocol, run once: each action with its timing and host calls.
    pub steps: Vec<StepRecord>,
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Every protocol step succeeded and no check failed (skips are fine).
    pub fn is_ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok) && self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The check called `name` (see [`names`]).
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// Each distinct failure of `runs` (`(run, why)`, in run order) once: as
/// `run: why` if only one run failed so, else as `why (seen in N of TOTAL
/// <what>: run, run, …)`, `total` being how many runs there were.
pub fn group_repeats(runs: Vec<(String, String)>, total: usize, what: &str) -> Vec<String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (run, why) in runs {
        match groups.iter_mut().find(|(w, _)| *w == why) {
            Some((_, seen_in)) => seen_in.push(run),
            None => groups.push((why, vec![run])),
        }
    }
    groups
        .into_iter()
        .map(|(why, seen_in)| match seen_in.as_slice() {
            [run] => format!("{run}: {why}"),
            _ => format!("{why} (seen in {} of {total} {what}: {})", seen_in.len(), seen_in.join(", ")),
        })
        .collect()
}

/// Texts at least this long are printed once; later mentions refer back.
const LONG: usize = 200;

/// What the printed report has shown so far, so a long failure is not
/// printed again.
#[derive(Default)]
struct Shown(Vec<String>);

impl Shown {
    /// `text`, with every long text shown before replaced by a reference.
    fn show(&mut self, text: &str) -> String {
        let mut out = text.to_owned();
        for seen in &self.0 {
            if out.contains(seen.as_str()) {
                out = out.replace(seen.as_str(), "<the failure shown above>");
            }
        }
        if out.len() >= LONG && out == text {
            self.0.push(text.to_owned());
        }
        out
    }
}

fn grant_list(grants: &[VaultGrant], others: &[String]) -> String {
    if grants.is_empty() && others.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = grants
        .iter()
        .map(|g| format!("{} [{}]", g.path, g.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(",")))
        .chain(others.iter().cloned())
        .collect();
    shown.join("; ")
}

/// The human form `rotator plugin test` prints.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, env) = (&self.plugin, &self.environment);
        writeln!(f, "plugin {} ({}, sha256 {})", p.label, p.origin, &p.sha256[..p.sha256.len().min(16)])?;
        writeln!(f, "declared capabilities: {}", grant_list(&p.capabilities, &p.others))?;
        writeln!(f, "grants: {}", grant_list(&env.grants, &env.other_grants))?;
        writeln!(f, "dev server {}, secret {}", env.vault, env.secret)?;
        for connection in &env.sql {
            writeln!(f, "sql connection {connection}")?;
        }
        if let Some(pg) = &env.postgres {
            writeln!(f, "postgres {pg} (dev server mount `database/`, connection and role `harness`)")?;
        }
        writeln!(f, "\nsteps:")?;
        let mut shown = Shown::default();
        for s in &self.steps {
            let outcome = if s.ok {
                "ok".to_owned()
            } else {
                format!("FAILED: {}", shown.show(s.error.as_deref().unwrap_or("")))
            };
            writeln!(f, "  {:<12} {:<6} {:>9.3} ms  {outcome}", s.step, s.by, s.duration_ms)?;
            for c in &s.host_calls {
                writeln!(f, "      {c}")?;
            }
        }
        writeln!(f, "\nchecks:")?;
        for c in &self.checks {
            writeln!(f, "  {} {}: {}", c.status.as_str(), c.name, shown.show(&c.reason))?;
            for d in &c.details {
                writeln!(f, "       - {}", shown.show(d))?;
            }
        }
        let (pass, fail, skip) = (self.count(Status::Pass), self.count(Status::Fail), self.count(Status::Skip));
        let verdict = if self.is_ok() { "conforms" } else { "DOES NOT CONFORM" };
        write!(f, "\n{verdict}: {pass} passed, {fail} failed, {skip} skipped")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_grouped_with_the_runs_they_happened_in() {
        let runs = vec![
            ("a".to_owned(), "boom".to_owned()),
            ("b".to_owned(), "other".to_owned()),
            ("c".to_owned(), "boom".to_owned()),
            ("d".to_owned(), "boom".to_owned()),
        ];
        assert_eq!(
            group_repeats(runs, 24, "crash points"),
            ["boom (seen in 3 of 24 crash points: a, c, d)", "b: other"]
        );
    }

    #[test]
    fn a_long_failure_is_printed_once() {
        let long = "x".repeat(LONG);
        let mut shown = Shown::default();
        assert_eq!(shown.show(&long), long);
        assert_eq!(shown.show(&format!("create: {long} (again)")), "create: <the failure shown above> (again)");
        assert_eq!(shown.show("short"), "short");
        assert_eq!(shown.show("short"), "short");
    }
}
