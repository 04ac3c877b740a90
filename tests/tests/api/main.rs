//! Integration tests of the operator HTTP API: its answers, its surface
//! (health, readiness, a panicking task) and the Vault paths it accepts. One
//! binary per subject because each test binary links wasmtime, cranelift and
//! the dev server (issue 10). Captures logs (`rotator_tests::logs`) to prove
//! no secret value is logged.

mod adoption;
mod api;
mod api_surface;
mod durable_jobs;
mod dynamic_leases;
mod flask_echo;
mod job_views;
mod paths_api;
mod reload;
mod startup;
