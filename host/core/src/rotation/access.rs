//! How a job's plugin is shown secrets, and the configurations that would
//! make handle mode a promise the host cannot keep.
//!
//! Handle mode means the plugin never holds the values of the job's hidden
//! fields. Three things would break that silently, so the daemon refuses
//! them at load, each with the job's location: a plugin that targets WIT
//! 0.1.0 (it has no handles, so it could only be shown values), a Vault
//! grant that lets the plugin read the job's own secret (it would read the
//! values past the handles), and `visible_fields` on a job that shows every
//! value anyway (a sign the operator believes something false).

use super::Job;
use crate::plugin::{Operation, SecretAccess};

impl Job {
    /// How the job's plugin is shown secrets: the job's `secret_access` and
    /// `visible_fields`, else what the plugin asks for.
    pub fn access(&self) -> SecretAccess {
        match self.config.secret_access.unwrap_or(self.plugin.info().access) {
            crate::plugin::Access::Values => SecretAccess::Values,
            crate::plugin::Access::Handles => SecretAccess::Handles {
                visible: self
                    .config
                    .visible_fields
                    .clone()
                    .unwrap_or_else(|| self.plugin.info().visible_fields.clone()),
            },
        }
    }

    /// The fields of the job's secret shown unredacted: the job's
    /// `public_fields`, else what the plugin declares.
    pub fn public_fields(&self) -> crate::secret::PublicFields {
        self.config.public_fields.clone().unwrap_or_else(|| self.plugin.info().public_fields.clone())
    }

    /// Why the job's secret access cannot be honoured, if it cannot: one
    /// message per problem, naming the job.
    pub fn access_problems(&self) -> Vec<String> {
        let id = &self.config.id;
        let mut problems = Vec::new();
        let handles = self.access().is_handles();
        if !handles && self.config.visible_fields.is_some() {
            problems.push(format!(
                "job `{id}`: visible_fields applies only with secret_access = \"handles\"; this job shows its plugin \
                 every value"
            ));
        }
        if !handles {
            return problems;
        }
        if self.plugin.wit_version() == "0.1.0" {
            problems.push(format!(
                "job `{id}`: secret_access = \"handles\" needs a plugin built for rotator:plugin@0.2.0 or later; {} \
                 targets 0.1.0, which can only be shown values",
                self.plugin.label()
            ));
        }
        // A secret in AWS is out of the plugin's reach: it has no AWS grant.
        if let Some(loc) = self.config.secret.as_ref().and_then(|s| s.kv()) {
            // KV v2 serves data under `<mount>/data/`, v1 at the path itself;
            // the mount's version is not known before Vault is asked.
            for path in [format!("{}/data/{}", loc.mount, loc.path), format!("{}/{}", loc.mount, loc.path)] {
                if self.config.grants.allows(Operation::Read, &path) {
                    problems.push(format!(
                        "job `{id}`: in handle mode the plugin must not read the job's own secret, but its grants \
                         allow reading `{path}`; narrow the grant or use secret_access = \"values\""
                    ));
                    break;
                }
            }
        }
        problems
    }
}
