//! What a rotation owes its consumers once the new value is current and
//! before `finish` may retire the old one: its hooks are told, and its
//! adoption gate (if the job has one) is asked whether they use the new
//! value yet. A child of the protocol, so the state machine itself stays
//! one readable file.

use time::OffsetDateTime;

use super::{Driver, Note};
use crate::rotation::{RotationError, RotationReport};

impl Driver<'_> {
    /// Tell the job's hooks that the new value is current, each delivery
    /// an event (the audit log and the metrics see it); a failed hook does
    /// not stop the rotation.
    pub(super) async fn tell_hooks(&mut self) {
        if self.job.config.hooks.is_empty() {
            return;
        }
        let p = self.v.state.in_progress.as_ref().expect("telling hooks about a rotation in progress");
        let version = p.new_version.as_ref().map(ToString::to_string);
        let (rotation_id, plugin) = (p.id.clone(), self.job.plugin.label());
        let notice = crate::rotation::hooks::Notice {
            job: &self.job.config.id,
            rotation_id: &rotation_id,
            version,
            plugin: &plugin,
        };
        for d in crate::rotation::hooks::tell(&self.job.config.hooks, &notice).await {
            let outcome = if d.error.is_some() { "failed" } else { "ok" };
            if let Some((why, _)) = &d.error {
                tracing::warn!(job = %self.job.config.id, error = %why, "hook failed; the rotation goes on");
            }
            // For a hook, the paths touched are the hook's target.
            let note = Note {
                duration: Some(d.duration),
                vault_paths: vec![d.target],
                error: d.error,
                ..Note::new("hook", outcome)
            };
            self.emit(note);
        }
    }

    /// The adoption gate, before `finish`: the first time, tell the hooks
    /// and record when the wait began (the one extra write a gated job
    /// makes, so a crash resumes the wait with its deadline). Then one look:
    /// adopted goes on to `finish`; not yet ends this run with
    /// `AwaitingAdoption`; past the deadline, `on_timeout` decides
    /// (`finish` anyway, or end now without it: `Some(report)`).
    pub(super) async fn await_adoption(&mut self) -> Result<Option<RotationReport>, RotationError> {
        use crate::config::adoption::OnTimeout;
        let gate = self.job.config.adoption.clone().expect("a gated job");
        if self.in_progress().adoption_since.is_none() {
            self.tell_hooks().await;
            self.in_progress().adoption_since = Some(OffsetDateTime::now_utc());
            self.save().await?;
        }
        self.owner()?;
        let p = self.v.state.in_progress.as_ref().expect("a rotation in progress");
        let since = p.adoption_since.expect("recorded above");
        let version = p.new_version.as_ref().map(ToString::to_string).unwrap_or_default();
        let until = since + gate.timeout;
        let job = self.job.config.id.clone();
        let started = std::time::Instant::now();
        let role = |data: &crate::secret::SecretJson| {
            data.fields().get("username").and_then(|u| u.as_str().map(str::to_owned))
        };
        let ask = crate::rotation::adoption::Ask {
            job: self.job,
            version: &version,
            old_role: self.ctx.current.as_ref().map(|c| role(&c.data)),
            new_role: role(&self.pending),
        };
        let adopted = crate::rotation::adoption::adopted(&gate.gate, self.store, &ask).await;
        let took = Some(started.elapsed());
        match adopted {
            Ok(true) => {
                tracing::info!(job = %job, version = %version, "consumers adopted the new version: finishing");
                self.emit(Note { duration: took, ..Note::new("adoption", "adopted") });
                return Ok(None);
            }
            Ok(false) => {}
            Err(why) => tracing::info!(job = %job, reason = %why, "adoption not confirmed yet"),
        }
        if OffsetDateTime::now_utc() < until {
            return Err(RotationError::AwaitingAdoption { job, version, until });
        }
        let why =
            format!("consumers did not adopt version {version} within {}", humantime::format_duration(gate.timeout));
        let kind = "adoption-timeout";
        match gate.on_timeout {
            OnTimeout::Finish => {
                tracing::warn!(job = %job, "{why}: finishing anyway (on_timeout = \"finish\")");
                self.emit(Note { duration: took, error: Some((why, kind)), ..Note::new("adoption", "timed-out") });
                Ok(None)
            }
            OnTimeout::Keep => {
                let why =
                    format!("{why}; `finish` was not run, so the old credential stays valid (on_timeout = \"keep\")");
                tracing::error!(job = %job, "{why}: the job NEEDS ATTENTION");
                self.emit(Note {
                    duration: took,
                    error: Some((why.clone(), kind)),
                    ..Note::new("adoption", "timed-out")
                });
                Ok(Some(self.done_with(Some(why)).await?))
            }
        }
    }
}
