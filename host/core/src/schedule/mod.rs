//! When jobs run.
//!
//! - [`cron`]: five-field cron expressions (UTC).
//! - [`spec`]: a job's schedule and its pure rules (slots, windows, jitter,
//!   retries, forced collisions).
//! - [`queue`]: the deadline queue the scheduler sleeps on.
//! - [`scheduler`]: the running scheduler: jobs, their state in Vault,
//!   retries, `not_within`, the concurrency limit, `rotate now`.

pub use rotator_cron as cron;
pub mod cycle;
pub mod spec;

pub use spec::Schedule;
