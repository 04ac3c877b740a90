//! When jobs run. For now: cron expressions ([`cron`]); the daemon runs
//! each job on its `interval`. The deadline-queue scheduler with windows,
//! jitter, `not_within` and state persisted in Vault builds on this module.

pub mod cron;
