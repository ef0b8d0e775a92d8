//! Units as restage.yaml writes them and as restage prints them: byte sizes (`500MB`,
//! `2GiB`), percentages (`5%`), durations (`250ms`, `1h30m`), and their human renderings
//! (`1.5 GiB`, `2m`, `14.6%`).
//!
//! A foundation: it depends on no other restage module, so config, progress, reports, health
//! and deploy all read and print the same units the same way.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A byte size: `500MB` (10^6), `2GiB` (2^30), `1024` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("`{s}` is not a size (examples: 500MB, 2GiB, 1048576)"))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "mb" | "m" => 1_000_000,
            "gb" | "g" => 1_000_000_000,
            "tb" | "t" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{s}` (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
                ));
            }
        };
        Ok(Size((number * factor as f64).round() as u64))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u64),
            Str(String),
        }
        match Repr::deserialize(d)? {
            Repr::Int(n) => Ok(Size(n)),
            Repr::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0))
    }
}

/// `1.5 GiB`-style rendering for reports.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A percentage as restage.yaml writes it: `5%`, `2.5%`, or a bare number of percent (`5`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, serde::Serialize)]
pub struct Percent(pub f64);

impl Percent {
    /// The share it stands for: `5%` is 0.05.
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }
}

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let number = text.strip_suffix('%').unwrap_or(text).trim();
        match number.parse::<f64>() {
            Ok(p) if p.is_finite() => Ok(Percent(p)),
            _ => Err(format!(
                "`{text}` is not a percentage (examples: 5%, 2.5%, 0)"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Num(f64),
            Str(String),
        }
        match Repr::deserialize(d)? {
            Repr::Num(n) => Ok(Percent(n)),
            Repr::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", format_percent(self.0))
    }
}

/// A duration: `250ms`, `30s`, `5m`, `1h`, `1h30m`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

/// `seconds` (negative counts as 0) as a duration; an infinite or too large one (over about
/// 584 billion years, which `std::time::Duration` cannot hold) is an error, not a panic.
fn from_seconds(seconds: f64, text: &str) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from_secs_f64(seconds.max(0.0))
        .map_err(|_| format!("`{text}` is too long a duration"))
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let bad = || format!("`{text}` is not a duration (examples: 500ms, 30s, 5m, 1h, 1h30m)");
        if let Ok(secs) = text.parse::<f64>() {
            return from_seconds(secs, text).map(Duration);
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = text;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let seconds = match &rest[..unit_len] {
                "ms" => number / 1000.0,
                "s" => number,
                "m" | "min" => number * 60.0,
                "h" => number * 3600.0,
                "d" => number * 86400.0,
                _ => return Err(bad()),
            };
            total = total
                .checked_add(from_seconds(seconds, text)?)
                .ok_or_else(|| format!("`{text}` is too long a duration"))?;
            rest = &rest[unit_len..];
        }
        Ok(Duration(total))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Num(f64),
            Str(String),
        }
        match Repr::deserialize(d)? {
            Repr::Num(n) => from_seconds(n, &n.to_string())
                .map(Duration)
                .map_err(serde::de::Error::custom),
            Repr::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `250ms`, `2s`, `1.5s`, `2m`: how the config writes durations.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A percentage with at most one decimal, without a trailing `.0`: `9%`, `14.6%`.
pub fn format_percent(p: f64) -> String {
    let text = format!("{p:.1}");
    text.strip_suffix(".0").unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("500MB".parse::<Size>().unwrap(), Size(500_000_000));
        assert_eq!("2GiB".parse::<Size>().unwrap(), Size(2 << 30));
        assert_eq!("1.5 KiB".parse::<Size>().unwrap(), Size(1536));
        assert_eq!("1024".parse::<Size>().unwrap(), Size(1024));
        assert!(
            "2 parsecs"
                .parse::<Size>()
                .unwrap_err()
                .contains("unknown size unit")
        );
    }

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<Duration>().unwrap().0;
        assert_eq!(d("30s"), std::time::Duration::from_secs(30));
        assert_eq!(d("5m"), std::time::Duration::from_secs(300));
        assert_eq!(d("1h30m"), std::time::Duration::from_secs(5400));
        assert_eq!(d("250ms"), std::time::Duration::from_millis(250));
        assert_eq!(d("2"), std::time::Duration::from_secs(2));
        assert!("5 fortnights".parse::<Duration>().is_err());
        // Too large for std's Duration: an error naming the value, never a panic.
        for huge in [
            "1e300",
            "inf",
            "1e300h",
            "18446744073709551615s 18446744073709551615s",
        ] {
            let e = huge.parse::<Duration>().unwrap_err();
            assert!(
                e.contains("too long a duration") || e.contains("not a duration"),
                "{huge}: {e}"
            );
        }
        assert!(
            "10000000000000000000s10000000000000000000s"
                .parse::<Duration>()
                .unwrap_err()
                .contains("too long a duration")
        );
        let yaml: Result<Duration, _> = serde_yaml::from_str("1.0e300");
        assert!(yaml.is_err());
    }

    #[test]
    fn formats() {
        use std::time::Duration;
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_percent(9.0), "9");
        assert_eq!(format_percent(14.64), "14.6");
    }

    #[test]
    fn percents() {
        let p = |s: &str| s.parse::<Percent>().unwrap();
        assert_eq!(p("5%"), Percent(5.0));
        assert_eq!(p(" 2.5 % "), Percent(2.5));
        assert_eq!(p("0"), Percent(0.0));
        assert_eq!(p("5%").fraction(), 0.05);
        assert_eq!(p("12.5%").to_string(), "12.5%");
        assert!(
            "five%"
                .parse::<Percent>()
                .unwrap_err()
                .contains("not a percentage")
        );
    }
}
