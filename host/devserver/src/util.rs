//! Small conversions every engine needs, written once so they agree.
//!
//! Vault is a Go program and its wire format shows it: timestamps are Go's
//! `RFC3339Nano` (trailing zeros trimmed), durations are Go's
//! `time.Duration.String()` ("3h25m19s", "0s"), and request fields are
//! decoded "weakly" (a number may arrive as `"5"`, a bool as `"true"`). The
//! helpers here reproduce those rules so clients written against Vault see
//! the same text from the dev server.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Go's `time.RFC3339Nano` in UTC: nanoseconds with trailing zeros trimmed.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let base = t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default();
    let nanos = t.nanosecond();
    if nanos == 0 {
        return base;
    }
    let frac = format!("{nanos:09}");
    let frac = frac.trim_end_matches('0');
    // `base` ends in "Z"; the fraction goes before it.
    format!("{}.{}Z", base.trim_end_matches('Z'), frac)
}

/// KV v2 writes "" for a timestamp that was never set.
pub(crate) fn rfc3339_opt(t: Option<OffsetDateTime>) -> String {
    t.map(rfc3339).unwrap_or_default()
}

/// Go's `time.Duration.String()` for a non-negative duration.
pub(crate) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 1_000_000));
    }
    let secs = nanos / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sub = nanos % 1_000_000_000;
    let s = decimal(s * 1_000_000_000 + sub, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `value / unit` as a decimal with trailing zeros of the fraction trimmed.
fn decimal(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let frac = format!("{frac:0width$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Vault's `ParseDurationSecond`: a number of seconds (JSON number or
/// digits) or a Go duration string, with `d` for days as Vault allows.
pub(crate) fn parse_duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(Duration::from_secs_f64))
            .ok_or_else(|| format!("invalid duration {n}")),
        Value::String(s) => parse_duration_str(s),
        other => Err(format!("invalid duration {other}")),
    }
}

fn parse_duration_str(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Duration::from_secs).map_err(|_| format!("invalid duration {s:?}"));
    }
    let bad = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Ok(Duration::from_secs_f64(total))
}

/// A field decoded like Go's `mapstructure.WeakDecode` into an integer.
pub(crate) fn weak_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) if s.trim().is_empty() => Some(0),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A field decoded like Go's `strconv.ParseBool` / weak decoding.
pub(crate) fn weak_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A scalar decoded weakly into a string (custom_metadata values).
pub(crate) fn weak_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Vault's comma-int-slice fields (`versions`): `[1,2]`, `"1,2"` or `3`.
pub(crate) fn weak_int_list(value: Option<&Value>) -> Result<Vec<i64>, String> {
    let bad = || "invalid versions: expected a list of integers".to_string();
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| weak_i64(v).ok_or_else(bad)).collect(),
        Some(Value::String(s)) => {
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| p.parse().map_err(|_| bad())).collect()
        }
        Some(other) => weak_i64(other).map(|v| vec![v]).ok_or_else(bad),
    }
}

/// RFC 7396 JSON merge patch, as KV v2 PATCH applies it.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The children of `prefix` among `keys`, one level deep, sorted: `a/b`
/// and `a/c` under `a/` give `b` and `c`; `a/b/c` gives the folder `b/`.
/// `prefix` is empty (the root) or ends with "/".
pub(crate) fn list_children<'a>(keys: impl Iterator<Item = &'a String>, prefix: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        match rest.find('/') {
            Some(i) => out.insert(rest[..=i].to_owned()),
            None => out.insert(rest.to_owned()),
        };
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_look_like_gos_rfc3339nano() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_521_685_446_945_319_214).unwrap();
        assert_eq!(rfc3339(t), "2018-03-22T02:24:06.945319214Z");
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_521_685_446_500_000_000).unwrap();
        assert_eq!(rfc3339(t), "2018-03-22T02:24:06.5Z");
        let t = OffsetDateTime::from_unix_timestamp(1_521_685_446).unwrap();
        assert_eq!(rfc3339(t), "2018-03-22T02:24:06Z");
    }

    #[test]
    fn durations_round_trip_through_go_text() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_secs(12319)), "3h25m19s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(61)), "1m1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(parse_duration(&json!("3h25m19s")).unwrap(), Duration::from_secs(12319));
        assert_eq!(parse_duration(&json!("90")).unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration(&json!(30)).unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration(&json!("1d")).unwrap(), Duration::from_secs(86400));
        assert!(parse_duration(&json!("soon")).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn listing_marks_folders() {
        let keys = ["foo".to_string(), "foo/bar".into(), "foo/baz/qux".into(), "other".into()];
        assert_eq!(list_children(keys.iter(), ""), ["foo", "foo/", "other"]);
        assert_eq!(list_children(keys.iter(), "foo/"), ["bar", "baz/"]);
        assert!(list_children(keys.iter(), "nope/").is_empty());
    }
}
