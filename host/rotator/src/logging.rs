//! Logging to stderr: human-readable by default, JSON lines with
//! `--log-format json`. `RUST_LOG` overrides `--log-level`; either way the
//! dependencies that would log secret values are held back
//! ([`rotator_core::secret::QUIET_LOG_TARGETS`]). Colours only when stderr is
//! a terminal: a log file or a journal gets plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(format: &str, level: &str) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    for directive in rotator_core::secret::QUIET_LOG_TARGETS {
        filter = filter.add_directive(directive.parse().expect("valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
