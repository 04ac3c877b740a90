//! Rotation events → audit records: every protocol action of every
//! rotation becomes one line of the chain.
//!
//! The log is also the source of the anchor the protocol stores in Vault
//! ([`Observer::anchor`]): its head, which only moves once a line is written.
//!
//! Writing is synchronous and small (one line, flushed); a failed write is
//! logged loudly and the rotation carries on, because refusing to rotate
//! for want of an audit line would trade a security control for an outage.

use super::{AuditAnchor, AuditEvent, AuditLog, Outcome, PluginIdentity, Step};
use crate::rotation::{Observer, RotationEvent};

fn step(name: &str) -> Step {
    match name {
        "create" => Step::Create,
        "stage" => Step::Stage,
        "set" => Step::Set,
        "test" => Step::Test,
        "promote" => Step::Promote,
        "finish" => Step::Finish,
        "rollback" => Step::Rollback,
        "resume" => Step::Resume,
        "rotation" => Step::Rotation,
        _ => Step::Record,
    }
}

fn outcome(e: &RotationEvent) -> Outcome {
    match (e.outcome, e.kind) {
        ("kept-pending", _) => Outcome::KeptPending,
        (_, Some("conflict")) => Outcome::Conflict,
        (_, Some("trap" | "memory-limit" | "instantiate")) => Outcome::Trapped,
        (_, Some("deadline")) => Outcome::TimedOut,
        _ if e.denied_calls > 0 && e.error.is_some() => Outcome::Denied,
        (_, Some(_)) | ("failed", _) => Outcome::Failed,
        _ => Outcome::Ok,
    }
}

/// `name@version` → (name, version).
fn split_label(label: &str) -> (String, String) {
    match label.rsplit_once('@') {
        Some((name, version)) => (name.to_owned(), version.to_owned()),
        None => (label.to_owned(), String::new()),
    }
}

impl Observer for AuditLog {
    fn event(&self, e: &RotationEvent) {
        let (name, version) = split_label(&e.plugin);
        let plugin = PluginIdentity { name, version, sha256: e.plugin_sha256.clone() };
        let mut record = AuditEvent::new(&e.actor, &e.job, plugin, &e.rotation_id, step(e.step), outcome(e))
            .paths(e.vault_paths.iter().cloned());
        if let Some(error) = &e.error {
            record = record.error(error);
        }
        if let Err(err) = self.append(record) {
            tracing::error!(job = %e.job, error = %err, "AUDIT LOG WRITE FAILED");
        }
    }

    fn anchor(&self, previous: Option<&AuditAnchor>) -> Option<AuditAnchor> {
        self.anchor_over(previous)
    }
}

impl AuditLog {
    /// What a state record should store as its anchor in place of
    /// `previous`: the head (the newest record already in the file), unless
    /// `previous` shows the file was cut or rewritten since — then
    /// `previous` is kept, so the evidence stays in Vault for `rotator audit
    /// verify`, and the daemon says so loudly. Checked against what the
    /// writer knows without reading the file: the head and the hashes of
    /// the newest records (those it found on opening and wrote since).
    pub fn anchor_over(&self, previous: Option<&AuditAnchor>) -> Option<AuditAnchor> {
        let w = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let head = AuditAnchor { log: w.log.clone()?, seq: w.next_seq - 1, hash: w.prev.clone() };
        let Some(previous) = previous else { return Some(head) };
        if previous.log != head.log {
            // A log moved aside on purpose looks the same; keeping the old
            // anchor would fail every later check, so only say it.
            tracing::error!(path = %self.path().display(), anchored_seq = previous.seq, "AUDIT LOG REPLACED: the state record anchored another log; check it with `rotator audit verify --config`");
            return Some(head);
        }
        let cut = previous.seq > head.seq;
        let rewritten = w.recent.iter().any(|(seq, hash)| *seq == previous.seq && *hash != previous.hash);
        if cut || rewritten {
            let what = if cut { "cut short" } else { "rewritten" };
            tracing::error!(path = %self.path().display(), anchored_seq = previous.seq, head_seq = head.seq, "AUDIT LOG {what} since it was anchored: keeping the anchor that shows it; check it with `rotator audit verify --config`");
            return Some(previous.clone());
        }
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_by_kind() {
        let mut e = RotationEvent {
            job: "j".into(),
            plugin: "kv-random@0.1.0".into(),
            plugin_sha256: "ab".into(),
            rotation_id: "r".into(),
            actor: "scheduler".into(),
            step: "set",
            outcome: "failed",
            duration: None,
            vault_paths: vec![],
            error: Some("boom".into()),
            kind: Some("deadline"),
            denied_calls: 0,
        };
        assert_eq!(outcome(&e), Outcome::TimedOut);
        e.kind = Some("permanent");
        e.denied_calls = 1;
        assert_eq!(outcome(&e), Outcome::Denied);
        e.outcome = "kept-pending";
        assert_eq!(outcome(&e), Outcome::KeptPending);
        assert_eq!(split_label("a@b@1.0"), ("a@b".into(), "1.0".into()));
    }
}
