//! Five-field cron expressions, evaluated in UTC (like Vault's
//! `rotation_schedule`): minute, hour, day of month, month, day of week.
//!
//! Each field takes `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`,
//! lists `a,b`, and names (`jan`, `mon`); day of week 7 is Sunday too. As in
//! Vixie cron, when both day fields are restricted a day matches if either
//! does. `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` work too.
//!
//! A crate of its own because two products need it and nothing else in
//! common: the core's schedule rules and the dev server's static-role
//! rotation (`rotation_schedule`).

use std::fmt;
use std::str::FromStr;

use time::{Date, Duration, Month, OffsetDateTime, Time};

/// A parsed cron expression.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.source)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parse one field into a bit set over `min..=max`.
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str], names_from: u32) -> Result<(u64, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + names_from);
        }
        s.parse::<u32>().map_err(|_| format!("{what}: `{s}` is not a number"))
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("{what}: step `{s}` is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: step must be at least 1"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, max),
                None => (value(r)?, value(r)?),
            },
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{what}: `{item}` is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, text == "*"))
}

impl FromStr for Cron {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expanded = match s.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "cron `{s}` has {} fields; it needs 5 (minute hour day-of-month month day-of-week)",
                fields.len()
            ));
        }
        let (minutes, _) = field(fields[0], "minute", 0, 59, &[], 0)?;
        let (hours, _) = field(fields[1], "hour", 0, 23, &[], 0)?;
        let (days, days_any) = field(fields[2], "day of month", 1, 31, &[], 0)?;
        let (months, _) = field(fields[3], "month", 1, 12, &MONTHS, 1)?;
        let (mut weekdays, weekdays_any) = field(fields[4], "day of week", 0, 7, &WEEKDAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self { source: s.trim().to_owned(), minutes, hours, days, months, weekdays, days_any, weekdays_any })
    }
}

impl Cron {
    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().number_days_from_sunday()) != 0;
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first matching minute strictly after `after` (UTC). `None` if the
    /// expression can never match (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after.to_offset(time::UtcOffset::UTC);
        // Checked steps: near the end of the calendar (year 9999) there is
        // no next minute, and that is "no slot", not a panic.
        let mut t = after.replace_second(0).ok()?.replace_nanosecond(0).ok()?.checked_add(Duration::minutes(1))?;
        // Five years of days is enough for any satisfiable expression.
        let limit = after.saturating_add(Duration::days(366 * 5));
        while t <= limit {
            if self.months & (1 << u8::from(t.month())) == 0 {
                let (y, m) = if t.month() == Month::December {
                    (t.year() + 1, Month::January)
                } else {
                    (t.year(), t.month().next())
                };
                t = Date::from_calendar_date(y, m, 1).ok()?.with_time(Time::MIDNIGHT).assume_utc();
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().next_day()?.with_time(Time::MIDNIGHT).assume_utc();
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.replace_minute(0).ok()?.checked_add(Duration::hours(1))?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.checked_add(Duration::minutes(1))?;
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn next(expr: &str, after: OffsetDateTime) -> OffsetDateTime {
        expr.parse::<Cron>().unwrap().next_after(after).unwrap()
    }

    #[test]
    fn common_expressions() {
        let t = datetime!(2026-11-22 10:17:30 UTC);
        assert_eq!(next("*/15 * * * *", t), datetime!(2026-11-22 10:30 UTC));
        assert_eq!(next("0 * * * *", t), datetime!(2026-11-22 11:00 UTC));
        assert_eq!(next("0 3 * * *", t), datetime!(2026-11-23 03:00 UTC));
        assert_eq!(next("@daily", t), datetime!(2026-11-23 00:00 UTC));
        // 2026-11-22 is a Sunday.
        assert_eq!(next("30 2 * * mon", t), datetime!(2026-11-23 02:30 UTC));
        assert_eq!(next("0 0 1 jan *", t), datetime!(2027-01-01 00:00 UTC));
        assert_eq!(next("0 0 * * 7", t), datetime!(2026-11-29 00:00 UTC));
        assert_eq!(next("0 9-17/4 * * 1-5", t), datetime!(2026-11-23 09:00 UTC));
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 1st of the month or any Friday.
        let t = datetime!(2026-11-22 00:00 UTC);
        assert_eq!(next("0 0 1 * fri", t), datetime!(2026-11-27 00:00 UTC));
        assert_eq!(next("0 0 1 * fri", datetime!(2026-11-28 00:00 UTC)), datetime!(2026-12-01 00:00 UTC));
    }

    #[test]
    fn leap_days_and_impossible_dates() {
        assert_eq!(next("0 0 29 2 *", datetime!(2026-03-01 00:00 UTC)), datetime!(2028-02-29 00:00 UTC));
        assert!("0 0 30 2 *".parse::<Cron>().unwrap().next_after(datetime!(2026-01-01 00:00 UTC)).is_none());
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        assert!("* * * *".parse::<Cron>().unwrap_err().contains("needs 5"));
        assert!("60 * * * *".parse::<Cron>().unwrap_err().contains("minute"));
        assert!("* * * foo *".parse::<Cron>().unwrap_err().contains("month"));
        assert!("*/0 * * * *".parse::<Cron>().unwrap_err().contains("step"));
        assert!("5-1 * * * *".parse::<Cron>().unwrap_err().contains("outside"));
    }
}
