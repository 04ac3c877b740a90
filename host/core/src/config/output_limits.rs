//! A job's caps on plugin output, from its `limits = { … }` table:
//! `error_message`, `log_line`, `plan_summary` and `secret` are sizes
//! (`"4KiB"`), `log_lines` and `host_calls` are counts. Each must lie between
//! [`OutputLimits::MIN`] and [`OutputLimits::HARD`]; a value outside is an
//! error at its location, and the default stays in its place.

use std::ops::RangeInclusive;

use toml::Spanned;

use super::Collector;
use super::parse::RawLimits;
use super::units::parse_bytes;
use crate::plugin::OutputLimits;

/// The job's output caps: the defaults, overridden by what `raw` sets.
pub(super) fn parse(c: &mut Collector, raw: &RawLimits) -> OutputLimits {
    let (min, hard) = (OutputLimits::MIN, OutputLimits::HARD);
    let mut out = OutputLimits::DEFAULT;
    size(c, &raw.error_message, "error_message", min.error_message..=hard.error_message, &mut out.error_message);
    size(c, &raw.log_line, "log_line", min.log_line..=hard.log_line, &mut out.log_line);
    size(c, &raw.plan_summary, "plan_summary", min.plan_summary..=hard.plan_summary, &mut out.plan_summary);
    size(c, &raw.secret, "secret", min.secret..=hard.secret, &mut out.secret);
    count(c, &raw.log_lines, "log_lines", min.log_lines..=hard.log_lines, &mut out.log_lines);
    count(c, &raw.host_calls, "host_calls", min.host_calls..=hard.host_calls, &mut out.host_calls);
    out
}

/// `1024` → `1KiB`, for messages.
fn show_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}

fn size(c: &mut Collector, v: &Option<Spanned<String>>, key: &str, range: RangeInclusive<usize>, out: &mut usize) {
    let Some(v) = v else { return };
    match parse_bytes(v.get_ref()) {
        Ok(n) if range.contains(&n) => *out = n,
        Ok(_) => c.error(
            v.span(),
            format!("limits.{key} must be between {} and {}", show_bytes(*range.start()), show_bytes(*range.end())),
        ),
        Err(why) => c.error(v.span(), why.to_string()),
    }
}

fn count(c: &mut Collector, v: &Option<Spanned<u64>>, key: &str, range: RangeInclusive<usize>, out: &mut usize) {
    let Some(v) = v else { return };
    match usize::try_from(*v.get_ref()) {
        Ok(n) if range.contains(&n) => *out = n,
        _ => c.error(v.span(), format!("limits.{key} must be between {} and {}", range.start(), range.end())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;
    use crate::plugin::OutputLimits;

    fn job(limits: &str) -> String {
        format!(
            "[[jobs]]\nid = \"j\"\nplugin = \"kv-random\"\nsecret = {{ mount = \"secret\", path = \"a\" }}\n\
             interval = \"1h\"\nlimits = {limits}\n"
        )
    }

    #[test]
    fn output_caps_are_set_per_job_within_their_hard_limits() {
        let text = job(
            r#"{ error_message = "1KiB", log_line = "512B", log_lines = 10, plan_summary = "2KiB", secret = "4KiB", host_calls = 5 }"#,
        );
        let config = parse("t.toml", &text, Path::new(".")).unwrap();
        let out = config.jobs[0].limits.output;
        let want = OutputLimits {
            error_message: 1 << 10,
            log_line: 512,
            log_lines: 10,
            plan_summary: 2 << 10,
            secret: 4 << 10,
            host_calls: 5,
        };
        assert_eq!(out, want);
        let defaults = parse("t.toml", &job(r#"{ memory = "32MiB" }"#), Path::new(".")).unwrap();
        assert_eq!(defaults.jobs[0].limits.output, OutputLimits::DEFAULT);
    }

    #[test]
    fn output_caps_past_their_hard_limits_are_errors_at_their_place() {
        let text =
            job(r#"{ error_message = "1MiB", log_lines = 0, secret = "2MiB", host_calls = 10001, log_line = "9x" }"#);
        let err = parse("t.toml", &text, Path::new(".")).unwrap_err().to_string();
        for want in [
            "limits.error_message must be between 256B and 64KiB",
            "limits.log_lines must be between 1 and 1000",
            "limits.secret must be between 1KiB and 1MiB",
            "limits.host_calls must be between 1 and 10000",
            "unknown size unit `x`",
        ] {
            assert!(err.contains(want), "{want} missing in {err}");
        }
        assert!(err.contains("t.toml:6:"), "{err}");
    }
}
