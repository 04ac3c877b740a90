//! The `vault` import: KV and generic Vault calls, checked against the job's
//! grants before anything is sent (for KV, before the mount's version is
//! even asked).
//!
//! Every path the plugin names is parsed once into a [`VaultPath`]; that
//! value, and nothing else, is checked against the grants and handed to the
//! client, which builds the URL from its segments. A path that does not
//! parse (`%2e%2e`, `..`, `?`, `\`, an absolute URL, …) is `denied` with the
//! reason, like a path outside the grants.
//!
//! A plugin run is synchronous (it lives on a blocking thread), the Vault
//! client is async, so [`VaultBridge`] blocks on the daemon's runtime for the
//! length of one call. Every call, allowed or denied, is recorded; a denial is
//! also logged as a warning naming job, plugin, operation and path. In a
//! read-only run (a dry run's `plan`) writes and deletes are denied whatever
//! the grants say.

use tokio::runtime::Handle;

use super::{CallOutcome, HostCall, HostState, NOT_GRANTED, READ_ONLY};
use crate::plugin::grants::Operation;
use crate::secret::SecretJson;
use crate::vault as client;
use crate::vault::kv::{KvSecret, kv_data_path, kv_v1_path};
use crate::vault::path::{VaultPath, shown};

/// Why a path that does not parse is refused (in the log line).
const NOT_CANONICAL: &str = "the path is not canonical";

/// Why a plugin's Vault call failed, as the plugin is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// Refused by the host (grants, a read-only run, a path that is not
    /// canonical, the host-call budget); Vault was not contacted.
    Denied(String),
    /// Vault answered with an error status and its `errors` list.
    Status { code: u16, errors: Vec<String> },
    /// A KV check-and-set did not match.
    CasMismatch(String),
    /// Vault could not be reached or did not answer in time.
    Unavailable(String),
}

/// A Vault client plus the runtime to drive it from a blocking thread.
#[derive(Clone)]
pub struct VaultBridge {
    pub client: client::VaultClient,
    pub handle: Handle,
}

impl HostState {
    /// Parse a path the plugin named, once: the [`VaultPath`] is what the
    /// grants are checked against and what the URL is built from. A path
    /// that is not canonical is refused (recorded and logged) as `denied`.
    fn parse_path(&mut self, function: &'static str, op: Operation, raw: &str) -> Result<VaultPath, VaultError> {
        VaultPath::parse(raw).map_err(|why| {
            let message = format!("{} refused: {why}", op.as_str());
            self.deny(function, op, &shown(raw), NOT_CANONICAL, message)
        })
    }

    /// Check a call against the grants and record it if denied.
    fn authorize(&mut self, function: &'static str, op: Operation, path: &VaultPath) -> Result<(), VaultError> {
        if self.grants.read_only && op.changes_state() {
            let what = format!("{} on `{path}`", op.as_str());
            return Err(self.deny(
                function,
                op,
                path.as_str(),
                READ_ONLY,
                super::read_only_refusal(&what, &self.job_id),
            ));
        }
        if self.grants.allows_path(op, path) {
            return Ok(());
        }
        let message = format!("{} on `{path}` is not granted to job `{}`", op.as_str(), self.job_id);
        Err(self.deny(function, op, path.as_str(), NOT_GRANTED, message))
    }

    /// Record and log a refused call; the error the plugin gets.
    fn deny(&mut self, function: &'static str, op: Operation, path: &str, reason: &str, message: String) -> VaultError {
        self.record(function, op, path, CallOutcome::Denied);
        tracing::warn!(
            job = %self.job_id,
            plugin = %self.plugin,
            operation = op.as_str(),
            path,
            "plugin call denied: {reason}"
        );
        VaultError::Denied(message)
    }

    fn record(&mut self, function: &'static str, op: Operation, path: &str, outcome: CallOutcome) {
        self.calls.push(HostCall { function, path: path.to_owned(), operation: op.as_str(), detail: None, outcome });
    }

    fn bridge(&self) -> Result<VaultBridge, VaultError> {
        self.vault.clone().ok_or_else(|| VaultError::Unavailable("no Vault connection in this run".into()))
    }

    /// Authorize, run the call on the bridge, record the outcome.
    fn call<R, F, Fut>(
        &mut self,
        function: &'static str,
        op: Operation,
        path: &VaultPath,
        f: F,
    ) -> Result<R, VaultError>
    where
        F: FnOnce(client::VaultClient) -> Fut,
        Fut: Future<Output = Result<R, client::VaultError>>,
    {
        self.authorize(function, op, path)?;
        let bridge = match self.bridge() {
            Ok(b) => b,
            Err(e) => {
                self.record(function, op, path.as_str(), CallOutcome::Failed(None));
                return Err(e);
            }
        };
        let result = super::perform(&bridge.handle, f(bridge.client.clone()));
        let outcome = match &result {
            Ok(_) => CallOutcome::Ok,
            Err(e) => CallOutcome::Failed(e.status()),
        };
        self.record(function, op, path.as_str(), outcome);
        result.map_err(plugin_error)
    }
}

/// What the plugin is told about a failed client call.
fn plugin_error(e: client::VaultError) -> VaultError {
    match e {
        client::VaultError::Status { status, errors, .. } => VaultError::Status { code: status, errors },
        client::VaultError::CasMismatch { .. } => VaultError::CasMismatch(e.to_string()),
        // Refused by the host before the call was sent.
        client::VaultError::Path(_) | client::VaultError::NotKv { .. } => VaultError::Denied(e.to_string()),
        other => VaultError::Unavailable(other.to_string()),
    }
}

/// A KV call's canonical mount and path, and the API path it touches.
struct KvTarget {
    mount: VaultPath,
    path: VaultPath,
    api: VaultPath,
}

impl HostState {
    /// The API path a KV call touches (`<mount>/data/<path>` on KV v2,
    /// `<mount>/<path>` on v1): what the grants are checked against. Which
    /// form applies depends on the mount's version, and only Vault knows it
    /// (asked once per mount; a mount whose type is not `kv` is refused
    /// then). A call the grants refuse in both forms, or that a read-only
    /// run refuses, is denied before that question, so a denied plugin
    /// never makes the host contact Vault.
    fn kv_target(
        &mut self,
        function: &'static str,
        op: Operation,
        mount: &str,
        path: &str,
    ) -> Result<KvTarget, VaultError> {
        let mount = self.parse_path(function, op, mount)?;
        let path = self.parse_path(function, op, path)?;
        let v2 = kv_data_path(&mount, &path);
        let granted = self.grants.allows_path(op, &v2) || self.grants.allows_path(op, &kv_v1_path(&mount, &path));
        if !granted {
            // Refused in both forms: this names the reason and records it.
            // (Were it ever to pass, `call` still checks the real path.)
            self.authorize(function, op, &v2)?;
        }
        let Some(bridge) = &self.vault else { return Ok(KvTarget { mount, path, api: v2 }) };
        // If the version cannot be learned now (Vault down), the call fails
        // as the KV call itself would have, rather than guessing a form.
        match bridge.handle.block_on(bridge.client.try_kv_data_path(&mount, &path)) {
            Ok(api) => Ok(KvTarget { mount, path, api }),
            Err(e) => {
                self.record(function, op, v2.as_str(), CallOutcome::Failed(e.status()));
                Err(plugin_error(e))
            }
        }
    }
}

/// The `vault` interface's functions, as the WIT adapter calls them.
impl HostState {
    /// Read the newest version of a KV secret.
    pub fn kv_read(&mut self, mount: String, path: String) -> Result<Option<KvSecret>, VaultError> {
        let KvTarget { mount, path, api } = self.kv_target("vault.kv-read", Operation::Read, &mount, &path)?;
        self.call("vault.kv-read", Operation::Read, &api, |c| async move { c.kv_read(&mount, &path).await })
    }

    /// Write a new version of a KV secret; its version.
    pub fn kv_write(&mut self, mount: String, path: String, data: String, cas: Option<u64>) -> Result<u64, VaultError> {
        let KvTarget { mount, path, api } = self.kv_target("vault.kv-write", Operation::Write, &mount, &path)?;
        let data =
            SecretJson::parse(data).map_err(|m| VaultError::Status { code: 400, errors: vec![m.to_string()] })?;
        self.call(
            "vault.kv-write",
            Operation::Write,
            &api,
            |c| async move { c.kv_write(&mount, &path, &data, cas).await },
        )
    }

    /// Call any Vault endpoint. `path` is relative to `/v1/` (a leading
    /// `/v1/` is accepted once).
    pub fn vault_request(&mut self, method: String, path: String, body: Option<String>) -> Result<String, VaultError> {
        let Some(op) = Operation::from_method(&method) else {
            return Err(VaultError::Denied(format!("method `{}` is not supported", shown(&method))));
        };
        let raw = path.strip_prefix("/v1/").or_else(|| path.strip_prefix("v1/")).unwrap_or(&path);
        let api = self.parse_path("vault.request", op, raw)?;
        let target = api.clone();
        let resp = self.call("vault.request", op, &api, |c| async move { c.request(&method, &target, body).await })?;
        Ok(resp.body.map(|b| b.to_string()).unwrap_or_else(|| "{}".into()))
    }
}
