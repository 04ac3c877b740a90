//! Shared helpers for the integration tests: an in-process dev server and
//! jobs built from TOML exactly as the daemon builds them.

pub mod postgres;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rotator::config;
use rotator::devserver::{DevServer, DevServerOptions};
use rotator::plugin::Runtime;
use rotator::rotation::Job;
use rotator::setup::{self, VaultOverride};
use rotator::vault::VaultClient;
use secrecy::SecretString;

pub const ROOT: &str = "test-root-token";

/// A dev server on a free loopback port.
pub async fn dev_server() -> DevServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    DevServer::start(DevServerOptions { addr, root_token: ROOT.into(), ..Default::default() })
        .await
        .expect("dev server")
}

/// Parse `toml`, connect to `server`, load every job.
pub fn jobs(server: &DevServer, toml: &str) -> (VaultClient, Vec<Job>, Arc<Runtime>) {
    let cfg = config::parse("test.toml", toml, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let over = VaultOverride { address: Some(server.url()), token: Some(SecretString::from(ROOT)) };
    let vault = setup::vault_client(&cfg, over).unwrap();
    let runtime = setup::runtime(&cfg).unwrap();
    let jobs = setup::load_jobs(&cfg, &runtime).unwrap_or_else(|e| panic!("{e}"));
    (vault, jobs, runtime)
}

/// A TOML string literal for a path (fixtures live in the build's folder).
pub fn fixture(name: &str) -> String {
    rotator::builtin::build_artifact(name).display().to_string()
}
