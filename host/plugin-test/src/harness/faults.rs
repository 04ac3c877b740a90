//! Making `test` fail from outside, and watching a rotation's events.
//!
//! A plugin's `test` proves the new value works, usually by calling the
//! target through a host call. The harness takes the first of test's `vault`
//! calls that reached Vault in the recorded walk (only the dev server can be
//! made to fail: an `sql` or `http` call reaches a system the harness does
//! not control) and has the dev server answer
//! that path (and method) with a 400 while `test` runs: a non-retried client
//! error, which a conforming plugin reports as a failed test. [`Watch`] arms
//! the fault when the rotation reports `set` done and disarms it as soon as
//! `test` ends, so the host's own writes and `rollback` are never disturbed.

use std::sync::Mutex;

use super::report::CallRecord;
use super::walk::Walk;
use rotator_core::plugin::Step;
use rotator_core::rotation::{Observer, RotationEvent};
use rotator_devserver::{DevServer, FaultRules};

/// The status the injected fault answers with: a client error, so neither
/// the Vault client nor a well-behaved plugin retries it away.
pub(super) const FAULT_STATUS: u16 = 400;

/// The call that will fail and the fault that fails it.
pub(super) struct TestFault {
    pub call: CallRecord,
    pub rules: FaultRules,
}

/// The HTTP methods that perform `operation` on Vault.
fn methods(operation: &str) -> Vec<String> {
    let methods: &[&str] = match operation {
        "read" => &["GET"],
        "write" => &["POST", "PUT", "PATCH"],
        "delete" => &["DELETE"],
        _ => &["LIST", "GET"],
    };
    methods.iter().map(|m| (*m).to_owned()).collect()
}

/// The fault that makes `test` fail, or why there is none.
pub(super) fn test_fault(walk: &Walk) -> Result<TestFault, String> {
    let test = walk.step(Step::Test).ok_or("the protocol run never reached `test`")?;
    let reached_vault = |c: &&CallRecord| c.function.starts_with("vault.") && c.outcome == "ok";
    let call = test.host_calls.iter().find(reached_vault).ok_or_else(|| {
        if test.host_calls.is_empty() {
            "`test` makes no host call".to_owned()
        } else {
            "none of `test`'s host calls reached Vault".to_owned()
        }
    })?;
    let rules = FaultRules {
        rate: 1.0,
        statuses: vec![FAULT_STATUS],
        path_prefix: Some(call.target.clone()),
        methods: methods(&call.operation),
        ..FaultRules::default()
    };
    Ok(TestFault { call: call.clone(), rules })
}

/// Records a rotation's events and, given a fault, has the dev server fail
/// `test`'s call while `test` runs.
pub(super) struct Watch<'a> {
    server: &'a DevServer,
    fault: Option<FaultRules>,
    events: Mutex<Vec<(&'static str, &'static str)>>,
}

impl<'a> Watch<'a> {
    pub fn new(server: &'a DevServer, fault: Option<FaultRules>) -> Self {
        Self { server, fault, events: Mutex::new(Vec::new()) }
    }

    /// Did the rotation report `step` with `outcome`?
    pub fn saw(&self, step: &str, outcome: &str) -> bool {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|(s, o)| *s == step && *o == outcome)
    }
}

impl Observer for Watch<'_> {
    fn event(&self, e: &RotationEvent) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push((e.step, e.outcome));
        let Some(rules) = &self.fault else { return };
        match (e.step, e.outcome) {
            ("set", "ok") => self.server.set_faults(Some(rules.clone())),
            ("test" | "rollback" | "rotation", _) => self.server.set_faults(None),
            _ => {}
        }
    }
}

impl Drop for Watch<'_> {
    /// Never leave a fault armed for whatever runs next.
    fn drop(&mut self) {
        if self.fault.is_some() {
            self.server.set_faults(None);
        }
    }
}
