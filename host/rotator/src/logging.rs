//! Logging to stderr: human-readable by default, JSON lines with
//! `--log-format json`. `--log-level` sets rotator's own crates' level
//! (dependencies log `info` at most); `RUST_LOG` overrides it; either way the
//! dependencies that would log secret values are held back
//! ([`rotator_core::secret::QUIET_LOG_TARGETS`]). Colours only when stderr is
//! a terminal and `NO_COLOR` is not set: a pipe, a log file or a journal
//! gets plain text.
//!
//! Human-format fields show values as people write them: a field recorded
//! with `?` that holds an `Option` shows its value (`version=2`, not
//! `version=Some(2)`) or `none`. Call sites should record plain values
//! themselves; this keeps the promise for the ones that do not, in
//! dependencies too.

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

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
        .with_ansi(colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR")));
    if format == "json" {
        builder.json().init();
    } else {
        builder.fmt_fields(PlainFields).init();
    }
}

/// Colour codes only on a terminal, and not there either when `NO_COLOR`
/// is set to anything (<https://no-color.org>).
fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `text` (a value's `Debug` form) as a person writes it: `Some(x)` as
/// `x`, `None` as `none`; anything else as it is.
fn plain(text: &str) -> &str {
    if text == "None" {
        return "none";
    }
    match text.strip_prefix("Some(").and_then(|t| t.strip_suffix(')')) {
        // Only when the parentheses are Some's own: `Some(a) (b)` stays.
        Some(inner) if balanced(inner) => plain(inner),
        _ => text,
    }
}

/// Every `(` in `s` closed in order, so stripping an outer pair is safe.
fn balanced(s: &str) -> bool {
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return false,
            ')' => depth -= 1,
            _ => {}
        }
    }
    depth == 0
}

/// The human format's fields: `name=value`, space-separated, the message
/// first as written, string fields quoted, `log.*` fields (the `log`
/// bridge's metadata) left out, as tracing-subscriber's default does; but
/// values recorded with `Debug` shown [`plain`].
struct PlainFields;

struct PlainVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> Self::Visitor {
        PlainVisitor { writer, first: true, result: Ok(()) }
    }
}

impl PlainVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = match name {
            "message" => write!(self.writer, "{sep}{value}"),
            _ => write!(self.writer, "{sep}{}={value}", name.strip_prefix("r#").unwrap_or(name)),
        };
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let shown = format!("{value:?}");
        self.write(field, format_args!("{}", plain(&shown)));
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::{colour, directives, plain};

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR does not count");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn options_read_as_their_values() {
        assert_eq!(plain("Some(2)"), "2");
        assert_eq!(plain("Some(Some(\"x\"))"), "\"x\"");
        assert_eq!(plain("None"), "none");
        assert_eq!(plain("Some(1) and (2)"), "Some(1) and (2)");
        assert_eq!(plain("Some(a) (b)"), "Some(a) (b)");
        assert_eq!(plain("Some((1, 2))"), "(1, 2)");
        assert_eq!(plain("Something"), "Something");
    }

    #[test]
    fn debug_is_for_rotator_and_dependencies_stay_at_info() {
        let d = directives("debug");
        assert!(d.starts_with("info,rotator=debug,rotator_core=debug"), "{d}");
        assert!(tracing_subscriber::EnvFilter::try_new(&d).is_ok());
        assert!(directives("warn").starts_with("warn,rotator=warn"));
    }
}
