//! Integration tests of a rotation end to end: the plan/commit protocol,
//! resuming an interrupted rotation, the audit trail, the PostgreSQL and
//! RabbitMQ plugins, WIT versions side by side, and Vault faults during
//! rotations. One binary per subject because each
//! test binary links wasmtime, cranelift and the dev server (issue 10).
//! Captures logs (`rotator_tests::logs`); tests find their lines by job id.

mod audit_trail;
mod aws_store;
mod database_root;
mod postgres_password;
mod rabbitmq;
mod recorded;
mod resume;
mod rotation_e2e;
mod vault_faults_rotation;
mod wit_versions;
