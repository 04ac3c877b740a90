//! Integration tests of a rotation end to end: the plan/commit protocol,
//! resuming an interrupted rotation, the audit trail, the PostgreSQL and
//! RabbitMQ plugins, WIT versions side by side, and Vault faults during
//! rotations. One binary per subject because each
//! test binary links wasmtime, cranelift and the dev server (issue 10).
//! Captures logs (`rotator_tests::logs`); tests find their lines by job id.

mod adoption_pg;
mod audit_trail;
mod aws_iam;
mod aws_records;
mod aws_store;
mod aws_web_identity;
mod database_root;
mod hooks;
mod kept_record;
mod kv1;
mod postgres_password;
mod rabbitmq;
mod recorded;
mod resume;
mod rotation_e2e;
mod vault_faults_rotation;
mod wit_versions;

use std::sync::OnceLock;

/// The runtime the tests against external servers (RabbitMQ, moto) run
/// on. The host's HTTP client is one per process and keeps connections to
/// a server open for reuse; a connection
/// belongs to the runtime that opened it and dies with it, so tests on
/// runtimes of their own would be handed each other's dead connections
/// (`runtime dropped the dispatch task`). The daemon has one runtime.
pub(crate) fn one_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap())
}
