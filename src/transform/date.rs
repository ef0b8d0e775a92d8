//! `date_shift{days}`: moves a date or timestamp by an offset drawn from the value's seed,
//! never zero: dates by 1 to `days` whole days, earlier or later; timestamps by 1 to `days`
//! days counted in seconds (so the time of day changes too).
//!
//! Values are read in PostgreSQL's ISO output (`2024-01-31`, `2024-01-31 12:00:00.5+01`,
//! `0044-03-15 BC`) and in ISO 8601 as JSON documents hold them (`2024-01-31T12:00:00Z`); the
//! output keeps the input's shape (separator, fraction, zone). `infinity` and `-infinity`
//! carry nothing and pass through; anything else that does not read as a date is an error,
//! never passed through. A shift that would leave PostgreSQL's range goes the other way.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};

use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::{BindError, Transform, TransformError};

const SECS_PER_DAY: i64 = 86_400;

#[derive(Debug)]
struct DateShift {
    days: u64,
}

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let days = b.whole("days")?.ok_or_else(|| b.missing("days"))?;
    b.check_locale()?;
    b.refuse_unique("two dates can be shifted onto the same one")?;
    b.fit()?;
    let identity = b.identity(&[("days", days.to_string())]);
    let keyed = b.keyed(&identity, false)?;
    Ok(Seeded::arc(DateShift { days }, keyed, None))
}

/// A date or timestamp as written, with the parts the output copies.
#[derive(Debug, PartialEq)]
struct Written<'a> {
    date: NaiveDate,
    time: Option<TimeOfDay<'a>>,
}

#[derive(Debug, PartialEq)]
struct TimeOfDay<'a> {
    separator: char,
    /// Seconds since midnight (86400 for PostgreSQL's `24:00:00`).
    seconds: i64,
    /// `.123456` or empty.
    fraction: &'a str,
    /// `+01`, `-05:30`, `Z` or empty.
    zone: &'a str,
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads `value`; None when it is not a date or timestamp in ISO form.
fn read(value: &str) -> Option<Written<'_>> {
    let (body, bc) = match value.strip_suffix(" BC") {
        Some(body) => (body, true),
        None => (value, false),
    };
    let dash = body.find('-')?;
    let year = digits(&body[..dash])? as i32;
    let rest = &body[dash + 1..];
    let month = digits(rest.get(0..2)?)?;
    if rest.get(2..3)? != "-" {
        return None;
    }
    let day = digits(rest.get(3..5)?)?;
    let year = if bc { 1 - year } else { year };
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let rest = &rest[5..];
    if rest.is_empty() {
        return Some(Written { date, time: None });
    }
    let separator = rest.chars().next()?;
    if separator != ' ' && separator != 'T' {
        return None;
    }
    let rest = &rest[1..];
    let hours = digits(rest.get(0..2)?)?;
    let minutes = digits(rest.get(3..5)?)?;
    let secs = digits(rest.get(6..8)?)?;
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || hours > 24 || minutes > 59 || secs > 60 {
        return None;
    }
    let rest = &rest[8..];
    let fraction_len = match rest.strip_prefix('.') {
        Some(digits) => 1 + digits.bytes().take_while(u8::is_ascii_digit).count(),
        None => 0,
    };
    let (fraction, zone) = rest.split_at(fraction_len);
    if !is_zone(zone) {
        return None;
    }
    Some(Written {
        date,
        time: Some(TimeOfDay {
            separator,
            seconds: i64::from(hours * 3600 + minutes * 60 + secs),
            fraction,
            zone,
        }),
    })
}

/// `""`, `Z`, or `±HH`, `±HH:MM`, `±HH:MM:SS`, `±HHMM`.
fn is_zone(zone: &str) -> bool {
    if zone.is_empty() || zone == "Z" {
        return true;
    }
    let Some(rest) = zone.strip_prefix(['+', '-']) else {
        return false;
    };
    let b = rest.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    match b.len() {
        2 => d(0) && d(1),
        4 => d(0) && d(1) && d(2) && d(3),
        5 => d(0) && d(1) && b[2] == b':' && d(3) && d(4),
        8 => d(0) && d(1) && b[2] == b':' && d(3) && d(4) && b[5] == b':' && d(6) && d(7),
        _ => false,
    }
}

/// PostgreSQL's earliest date and timestamp: 4714-11-24 BC (Julian day 0).
fn earliest() -> NaiveDate {
    NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap_or(NaiveDate::MIN)
}

/// `date` moved by `offset` seconds, or None when it leaves the supported range.
fn shifted(date: NaiveDate, seconds: i64, offset: i64) -> Option<(NaiveDate, i64)> {
    let total = i64::from(date.num_days_from_ce()) * SECS_PER_DAY + seconds + offset;
    let day = i32::try_from(total.div_euclid(SECS_PER_DAY)).ok()?;
    let new = NaiveDate::from_num_days_from_ce_opt(day)?;
    (new >= earliest()).then_some((new, total.rem_euclid(SECS_PER_DAY)))
}

impl Generate for DateShift {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        if input == "infinity" || input == "-infinity" {
            out.push_str(input);
            return Ok(());
        }
        let written = read(input)
            .ok_or_else(|| TransformError::new("a value is not a date or timestamp in ISO form"))?;
        let later = draw.below(2) == 1;
        let magnitude = match written.time {
            None => (1 + draw.below(self.days)) as i64 * SECS_PER_DAY,
            Some(_) => SECS_PER_DAY + draw.below((self.days - 1) * SECS_PER_DAY as u64 + 1) as i64,
        };
        let offset = if later { magnitude } else { -magnitude };
        let seconds = written.time.as_ref().map_or(0, |t| t.seconds);
        let (date, seconds) = shifted(written.date, seconds, offset)
            .or_else(|| shifted(written.date, seconds, -offset))
            .ok_or_else(|| TransformError::new("a date is outside the range a shift can keep"))?;
        let (year, bc) = if date.year() <= 0 {
            (1 - date.year(), true)
        } else {
            (date.year(), false)
        };
        let _ = write!(out, "{year:04}-{:02}-{:02}", date.month(), date.day());
        if let Some(time) = &written.time {
            let _ = write!(
                out,
                "{}{:02}:{:02}:{:02}{}{}",
                time.separator,
                seconds / 3600,
                seconds % 3600 / 60,
                seconds % 60,
                time.fraction,
                time.zone
            );
        }
        if bc {
            out.push_str(" BC");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::super::tests::{apply, array_of, bind_err, bind_on, col, spec, text_col, ty};
    use super::*;
    use crate::catalog::TypeKind;
    use crate::transform::RuleSpec;

    fn shift(kind: TypeKind, days: u64, value: &str) -> String {
        let t = bind_on(
            &RuleSpec::named("date_shift").with("days", days),
            &ty("date", kind),
            false,
        )
        .unwrap();
        apply(&*t, value).unwrap()
    }

    #[test]
    fn reads_iso_forms() {
        assert!(read("2024-01-31").is_some());
        assert!(read("2024-01-31 12:00:00").is_some());
        assert!(read("2024-01-31 12:00:00.123456+05:30").is_some());
        assert!(read("2024-01-31T12:00:00Z").is_some());
        assert!(read("2024-01-31 24:00:00").is_some());
        assert!(read("0044-03-15 BC").is_some());
        assert!(read("1900-01-01 00:00:00+00:09:21").is_some());
        for bad in [
            "",
            "2024",
            "2024-1-31",
            "2024-02-30",
            "31/01/2024",
            "2024-01-31x",
            "2024-01-31 12:00",
            "2024-01-31 12:00:00 +1",
            "２０２４-01-01",
            "-2024-01-01",
            "2024-01-31 12:00:00.5+1:00",
        ] {
            assert!(read(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dates_move_by_whole_days_never_zero() {
        let base = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
        for i in 0..300 {
            let d = base + chrono::Duration::days(i);
            let input = d.format("%Y-%m-%d").to_string();
            let out = shift(TypeKind::Date, 30, &input);
            let parsed = NaiveDate::parse_from_str(&out, "%Y-%m-%d").unwrap();
            let moved = (parsed - d).num_days().abs();
            assert!((1..=30).contains(&moved), "{input} → {out}");
        }
    }

    #[test]
    fn timestamps_keep_their_shape() {
        for i in 0..200 {
            let input = format!("2024-03-{:02} 12:34:56.789+01", 1 + i % 28);
            let out = shift(TypeKind::TimestampTz, 10, &input);
            assert!(out.ends_with(".789+01"), "{out}");
            let a = NaiveDateTime::parse_from_str(&input[..19], "%Y-%m-%d %H:%M:%S").unwrap();
            let b = NaiveDateTime::parse_from_str(&out[..19], "%Y-%m-%d %H:%M:%S").unwrap();
            let moved = (b - a).num_seconds().abs();
            assert!((86_400..=10 * 86_400).contains(&moved), "{input} → {out}");
        }
        let out = shift(TypeKind::Timestamp, 1, "2024-01-31T00:00:00Z");
        assert!(
            out == "2024-02-01T00:00:00Z" || out == "2024-01-30T00:00:00Z",
            "{out}"
        );
    }

    #[test]
    fn bc_and_range_edges() {
        let out = shift(TypeKind::Date, 1, "0001-01-01");
        assert!(out == "0001-01-02" || out == "0001-12-31 BC", "{out}");
        let out = shift(TypeKind::Date, 1, "0044-03-15 BC");
        assert!(out == "0044-03-16 BC" || out == "0044-03-14 BC", "{out}");
        // At PostgreSQL's first day, the shift can only go later.
        assert_eq!(shift(TypeKind::Date, 1, "4714-11-24 BC"), "4714-11-25 BC");
        assert_eq!(shift(TypeKind::Date, 5, "infinity"), "infinity");
        assert_eq!(shift(TypeKind::TimestampTz, 5, "-infinity"), "-infinity");
        let out = shift(TypeKind::Date, 1, "262142-12-31");
        assert_eq!(out, "262142-12-30");
    }

    #[test]
    fn bad_values_are_errors_without_the_value() {
        let t = bind_on(
            &RuleSpec::named("date_shift").with("days", 3),
            &ty("date", TypeKind::Date),
            false,
        )
        .unwrap();
        let mut out = String::new();
        let err = t.apply("31/01/2024", &mut out).unwrap_err();
        assert_eq!(err.0, "a value is not a date or timestamp in ISO form");
        assert!(!err.0.contains("31/01"));
    }

    #[test]
    fn errors() {
        let date = ty("date", TypeKind::Date);
        assert_eq!(
            bind_err(&RuleSpec::named("date_shift"), &col(&date)),
            "`date_shift` needs parameter `days`"
        );
        assert_eq!(
            bind_err(&spec("{ transform: date_shift, days: 0 }"), &col(&date)),
            "`date_shift`: parameter `days` must be a whole number from 1 to 100000 (got 0)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: date_shift, days: 3 }"), &text_col()),
            "`date_shift` does not fit column type text (it takes date, timestamp and timestamptz)"
        );
        assert_eq!(
            bind_err(
                &spec("{ transform: date_shift, days: 3, unique: true }"),
                &col(&date)
            ),
            "`date_shift`: parameter `unique` cannot be true for `date_shift`: two dates can be shifted onto the same one"
        );
    }

    #[test]
    fn arrays_null_and_determinism() {
        let arr = array_of("date[]", TypeKind::Date);
        let t = bind_on(&spec("{ transform: date_shift, days: 3 }"), &arr, false).unwrap();
        let out = apply(&*t, "{2024-01-01,NULL,infinity}").unwrap();
        let one = shift(TypeKind::Date, 3, "2024-01-01");
        assert_eq!(out, format!("{{{one},NULL,infinity}}"));
        let mut null = String::new();
        assert_eq!(
            t.apply_null(&mut null).unwrap(),
            crate::transform::Output::Null
        );
    }
}
