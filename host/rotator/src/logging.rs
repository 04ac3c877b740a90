//! Logging to stderr: human-readable by default, JSON lines with
//! `--log-format json`. `--log-level` sets rotator's own crates' level
//! (dependencies log `info` at most); `RUST_LOG` overrides it; either way the
//! dependencies that would log secret values are held back
//! ([`rotator_core::secret::QUIET_LOG_TARGETS`]). Colours only when stderr is
//! a terminal: a log file or a journal gets plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// rotator's own crates: `--log-level` is about them.
const OWN_CRATES: &[&str] =
    &["rotator", "rotator_core", "rotator_daemon", "rotator_devserver", "rotator_plugin_test", "rotator_cron"];

/// The filter `--log-level LEVEL` means: LEVEL for rotator's crates, and
/// at most `info` for its dependencies, whose debug output is theirs to
/// debug (cranelift alone writes megabytes compiling one plugin).
/// `RUST_LOG` reaches into dependencies when someone needs that.
fn directives(level: &str) -> String {
    let deps = if matches!(level.to_ascii_lowercase().as_str(), "debug" | "trace") { "info" } else { level };
    let own: Vec<String> = OWN_CRATES.iter().map(|c| format!("{c}={level}")).collect();
    format!("{deps},{}", own.join(","))
}

pub fn init(format: &str, level: &str) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives(level)));
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

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn debug_is_for_rotator_and_dependencies_stay_at_info() {
        let d = directives("debug");
        assert!(d.starts_with("info,rotator=debug,rotator_core=debug"), "{d}");
        assert!(tracing_subscriber::EnvFilter::try_new(&d).is_ok());
        assert!(directives("warn").starts_with("warn,rotator=warn"));
    }
}
