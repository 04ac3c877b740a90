//! Startup, owned by the library: [`Daemon::from_config`] turns a checked
//! [`Config`] into a daemon ready to [`run`](Daemon::run), and says why not
//! with a typed [`StartError`].
//!
//! The binary, the tests and anything embedding rotator build daemons this
//! one way, so what `rotator run` does at startup (log in, load and check
//! every plugin, open the audit log, bind the API) is what every test runs.
//! The few things a caller decides rather than the config are
//! [`StartOptions`]; everything else comes from the config.

use std::net::SocketAddr;
use std::sync::Arc;

use rotator_core::config::{Config, ConfigErrors};
use rotator_core::metrics::Metrics;
use rotator_core::rotation::Observer;
use rotator_core::vault::leases::LeaseMode;
use tokio::net::TcpListener;

use crate::api::{API_TOKEN_ENV, ApiOptions, ApiToken, ApiTokenError};
use crate::daemon::{Daemon, LeaseOptions};
use crate::replicas::Replicas;
use crate::setup::{self, SetupError, VaultOverride};

/// What the caller decides rather than the config. [`Default`]: everything
/// from the config and the environment.
#[derive(Default)]
pub struct StartOptions {
    /// Overrides for `[vault]` (`rotator dev` points at its own server).
    pub vault: VaultOverride,
    /// The API's listener, already bound (so the caller can print its real
    /// address first); `None` binds `[daemon] api_addr`.
    pub api_listener: Option<TcpListener>,
    /// The API token; `None` takes `[daemon] api_token` or the environment,
    /// and refuses to start without one.
    pub api_token: Option<ApiToken>,
    /// Show secret values in API answers; `None` takes `[daemon] reveal_secrets`.
    pub reveal_secrets: Option<bool>,
    /// Who else hears every rotation step, besides the audit log the config
    /// names and the daemon's metrics.
    pub observers: Vec<Arc<dyn Observer>>,
    /// The file the config came from: `SIGHUP` and `POST /reload` read it
    /// again ([`crate::reload`]). `None`: no live reload.
    pub config_path: Option<std::path::PathBuf>,
}

/// Why a daemon could not start. Each names what to fix; none carries a
/// secret value.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Plugins that did not load or settings their schema refuses, located
    /// in the config file.
    #[error("{0}")]
    Jobs(#[from] ConfigErrors),
    #[error(
        "the operator API needs a token: set [daemon] api_token = {{ env = \"…\" }} or {{ file = \"…\" }}, \
         or {API_TOKEN_ENV} (at least 16 characters, e.g. `openssl rand -hex 32`)"
    )]
    NoApiToken,
    #[error("{0}")]
    ApiToken(#[from] ApiTokenError),
    #[error("binding the API to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl Daemon {
    /// Everything `config` asks for, ready to run: the Vault client (counted
    /// in the daemon's metrics) and the daemon's identity (logged in, or its
    /// token looked up) unless the config runs without Vault, every job's plugin loaded and its settings checked,
    /// the audit log opened, the API bound.
    pub async fn from_config(config: &Config, options: StartOptions) -> Result<Daemon, StartError> {
        let api_token = match options.api_token {
            Some(token) => token,
            None => ApiToken::from_config(config)?.ok_or(StartError::NoApiToken)?,
        };
        let metrics = Metrics::new();
        let vault = setup::vault_client(config, options.vault)?.map(|v| v.with_metrics(metrics.clone()));
        let mut observers = setup::observers(config)?;
        observers.extend(options.observers);
        let vault = match vault {
            Some(client) => {
                let identity = setup::identity(config, &client).await?;
                Some((client, identity))
            }
            None => None,
        };
        let runtime = setup::runtime(config)?;
        let jobs = setup::load_jobs(config, &runtime)?;
        let api_listener = match options.api_listener {
            Some(listener) => listener,
            None => {
                let addr = config.daemon.api_addr;
                TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?
            }
        };
        let mut state = setup::state_store(config, vault.as_ref().map(|(client, _)| client))?;
        // Replicas share the jobs through a record beside the job records;
        // every record write and target step asks the replica's guard.
        let replicas = match (&config.daemon.replicas, &config.daemon.state, &vault) {
            (Some(r), rotator_core::config::StateConfig::Vault { mount, prefix }, Some((client, _))) => {
                let replicas = Replicas::new(r, client.clone(), mount, prefix, metrics.clone());
                let replicas = match api_listener.local_addr().ok().and_then(advertised) {
                    Some(addr) => replicas.with_api(addr),
                    None => replicas,
                };
                state = state.with_guard(replicas.guard());
                tracing::info!(replica = %replicas.id(), lease_ttl = %humantime::format_duration(r.lease_ttl), "running as a replica: jobs are shared through Vault");
                Some(replicas)
            }
            _ => None,
        };
        let api = ApiOptions {
            reveal_secrets: options.reveal_secrets.unwrap_or(config.daemon.reveal_secrets),
            plugin_dirs: config.plugin_dirs(),
            ..ApiOptions::new(api_token, runtime)
        };
        Ok(Daemon {
            jobs,
            state,
            replicas,
            vault,
            leases: lease_options(config),
            api_listener,
            max_concurrent_rotations: config.daemon.max_concurrent_rotations as usize,
            max_rotations_per_second: config.daemon.max_rotations_per_second,
            reload_from: options.config_path.map(|path| (path, config.clone())),
            shutdown_grace: config.daemon.shutdown_grace,
            observers,
            metrics,
            api,
        })
    }
}

/// The `[vault]` lease keys, with the records beside Vault-kept job states.
fn lease_options(config: &Config) -> LeaseOptions {
    let mut options = config.vault.as_ref().map_or_else(LeaseOptions::default, |v| LeaseOptions {
        renewals_per_second: v.lease_renewals_per_second,
        revoke_on_shutdown: v.revoke_leases_on_shutdown,
        max_tracked: v.max_tracked_leases as usize,
        mode: if v.reuse_dynamic_credentials { LeaseMode::Reuse } else { LeaseMode::Each },
        records: None,
    });
    if let rotator_core::config::StateConfig::Vault { mount, prefix } = &config.daemon.state {
        options.records = Some((mount.clone(), prefix.clone()));
    }
    options
}

/// The API address other replicas may send callers to: the bound one, or,
/// when bound to every interface, `$HOSTNAME:<port>` (a pod's name); none
/// if neither says where this replica is.
fn advertised(bound: SocketAddr) -> Option<String> {
    if !bound.ip().is_unspecified() {
        return Some(bound.to_string());
    }
    let host = std::env::var("HOSTNAME").ok().filter(|h| rotator_core::config::replicas::check_name(h).is_ok())?;
    Some(format!("{host}:{}", bound.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_address_is_advertised_as_is_and_every_interface_never_is() {
        assert_eq!(advertised("127.0.0.1:8080".parse().unwrap()).as_deref(), Some("127.0.0.1:8080"));
        // 0.0.0.0 tells a caller nothing: the host name stands in, or nothing.
        let any = advertised("0.0.0.0:8080".parse().unwrap());
        assert!(any.as_deref().is_none_or(|a| !a.starts_with("0.0.0.0") && a.ends_with(":8080")), "{any:?}");
    }
}
