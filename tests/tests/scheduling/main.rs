//! Integration tests of the daemon: the scheduler, failure isolation between
//! jobs, and the sample configurations. One binary per subject because each
//! test binary links wasmtime, cranelift and the dev server (issue 10).

mod config_props;
mod config_samples;
mod daemon;
mod scheduler;
