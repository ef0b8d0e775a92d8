//! Value generators: each makes the COPY text of one value (unescaped) from a 64-bit hash of
//! (seed, table, column, row), so any row of any table can be made alone, in any order, by any
//! worker — the foreign keys read their parents' keys this way instead of from a database.

use std::fmt::Write as _;

/// splitmix64: the mixing step of every generated value.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable 64-bit key of names (FNV-1a, then mixed): the same on every machine and run.
pub fn key_of(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    mix(h)
}

/// The hash of row `row` of the column keyed `key`, for the `salt`-th use.
pub fn hash(key: u64, row: u64, salt: u64) -> u64 {
    mix(key ^ mix(row ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d)))
}

/// A fraction in [0, 1).
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

pub(super) const WORDS: &[&str] = &[
    "alpha", "bravo", "cedar", "delta", "ember", "fable", "garnet", "harbor", "iris", "jasper",
    "kestrel", "lumen", "maple", "nectar", "onyx", "pepper", "quartz", "raven", "sable", "tundra",
    "umber", "velvet", "willow", "xenon", "yarrow", "zephyr", "amber", "birch", "coral", "dune",
    "echo", "fern", "glade", "heath", "indigo", "juniper", "kelp", "lotus", "meadow", "nimbus",
    "orchid", "pine", "quill", "ridge", "slate", "thistle", "upland", "vale", "wren", "yew",
    "acorn", "basil", "clover", "dahlia", "elm", "flint", "gale", "hazel", "ivy", "jade", "kite",
    "lark", "moss", "north",
];

/// How a value is made.
#[derive(Debug, Clone)]
pub enum ValueGen {
    /// Always NULL (a nullable column nothing else can fill).
    Null,
    Const(String),
    /// One of these, uniformly (enum labels, an IN-list, `generate: { values: [...] }`).
    Choice(Vec<String>),
    /// Production's most common values with their frequencies, then `rest`.
    Common {
        values: Vec<String>,
        cumulative: Vec<f64>,
        rest: Box<ValueGen>,
    },
    /// Production's histogram bounds: a bucket uniformly, then a value inside it (numbers,
    /// dates) or its lower bound (anything else).
    Histogram {
        bounds: Vec<String>,
        numeric: bool,
    },
    Int {
        lo: i64,
        hi: i64,
    },
    Real {
        lo: f64,
        hi: f64,
        scale: Option<u32>,
    },
    Bool,
    /// Days since 1970-01-01.
    Date {
        lo: i64,
        hi: i64,
    },
    /// Seconds since 1970-01-01 00:00:00.
    Timestamp {
        lo: i64,
        hi: i64,
        tz: bool,
    },
    Time,
    Interval,
    Uuid,
    Inet,
    Cidr,
    Mac,
    Bytea,
    /// Words, at most `max_len` characters (at least `min_len`), matching every LIKE pattern.
    Text {
        max_len: Option<usize>,
        min_len: usize,
        like: Vec<String>,
    },
    Json,
    /// A document in the shape of production's (see [`super::json_shape`]).
    Shaped(std::sync::Arc<super::json_shape::Shape>),
    TsVector,
    /// `generate: { format: "ORD-{row}-{rand}" }`.
    Format(String),
    /// A one-dimensional array of 0–3 elements.
    Array(Box<ValueGen>),
}

impl ValueGen {
    /// Writes the value for hash `h`; false for NULL.
    pub fn write(&self, h: u64, row: u64, out: &mut String) -> bool {
        match self {
            ValueGen::Null => return false,
            ValueGen::Const(v) => out.push_str(v),
            ValueGen::Choice(values) => {
                if values.is_empty() {
                    return false;
                }
                out.push_str(&values[(h % values.len() as u64) as usize]);
            }
            ValueGen::Common {
                values,
                cumulative,
                rest,
            } => {
                let u = unit(mix(h ^ 0x5151));
                match cumulative.iter().position(|c| u < *c) {
                    Some(i) => out.push_str(&values[i]),
                    None => return rest.write(h, row, out),
                }
            }
            ValueGen::Histogram { bounds, numeric } => {
                if bounds.is_empty() {
                    return false;
                }
                let buckets = bounds.len().saturating_sub(1).max(1);
                let b = (h % buckets as u64) as usize;
                let lo = &bounds[b];
                let hi = bounds.get(b + 1).unwrap_or(lo);
                if *numeric {
                    if let (Ok(l), Ok(u)) = (lo.parse::<i64>(), hi.parse::<i64>()) {
                        let span = (u - l).max(0) as u64 + 1;
                        let _ = write!(out, "{}", l + (mix(h) % span) as i64);
                        return true;
                    }
                    if let (Some(l), Some(u)) = (parse_date(lo), parse_date(hi))
                        && lo.len() == 10
                    {
                        let span = (u - l).max(0) as u64 + 1;
                        out.push_str(&format_date(l + (mix(h) % span) as i64));
                        return true;
                    }
                    if let (Ok(l), Ok(u)) = (lo.parse::<f64>(), hi.parse::<f64>())
                        && l.is_finite()
                        && u.is_finite()
                    {
                        let v = l + (u - l) * unit(mix(h));
                        let decimals = lo.split('.').nth(1).map(str::len).unwrap_or(0);
                        let _ = write!(out, "{v:.decimals$}");
                        return true;
                    }
                }
                out.push_str(lo);
            }
            ValueGen::Int { lo, hi } => {
                let span = (*hi as i128 - *lo as i128 + 1).max(1) as u128;
                let v = *lo as i128 + (h as u128 % span) as i128;
                let _ = write!(out, "{v}");
            }
            ValueGen::Real { lo, hi, scale } => {
                let v = lo + (hi - lo) * unit(h);
                match scale {
                    Some(s) => {
                        let s = *s as usize;
                        let mut v = v;
                        // Rounding must not step over an inclusive bound.
                        let factor = 10f64.powi(s as i32);
                        v = (v * factor).floor() / factor;
                        if v < *lo {
                            v = (lo * factor).ceil() / factor;
                        }
                        let _ = write!(out, "{v:.s$}");
                    }
                    None => {
                        let _ = write!(out, "{v}");
                    }
                }
            }
            ValueGen::Bool => out.push(if h & 1 == 0 { 't' } else { 'f' }),
            ValueGen::Date { lo, hi } => {
                let span = (hi - lo).max(0) as u64 + 1;
                out.push_str(&format_date(lo + (h % span) as i64));
            }
            ValueGen::Timestamp { lo, hi, tz } => {
                let span = (hi - lo).max(0) as u64 + 1;
                format_timestamp(lo + (h % span) as i64, *tz, out);
            }
            ValueGen::Time => {
                let s = h % 86_400;
                let _ = write!(out, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
            }
            ValueGen::Interval => {
                let _ = write!(out, "{} days {} seconds", h % 400, (h >> 20) % 86_400);
            }
            ValueGen::Uuid => format_uuid(h, mix(h ^ 0xabcdef), out),
            ValueGen::Inet => {
                let _ = write!(
                    out,
                    "10.{}.{}.{}",
                    (h >> 8) & 0xff,
                    (h >> 16) & 0xff,
                    1 + (h >> 24) % 254
                );
            }
            ValueGen::Cidr => {
                let _ = write!(out, "10.{}.{}.0/24", (h >> 8) & 0xff, (h >> 16) & 0xff);
            }
            ValueGen::Mac => {
                let b = h.to_be_bytes();
                let _ = write!(
                    out,
                    "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    b[1], b[2], b[3], b[4], b[5]
                );
            }
            ValueGen::Bytea => {
                let _ = write!(out, "\\x{:016x}", mix(h));
            }
            ValueGen::Text {
                max_len,
                min_len,
                like,
            } => write_text(h, *max_len, *min_len, like, out),
            ValueGen::Json => {
                let _ = write!(
                    out,
                    "{{\"id\": {}, \"kind\": \"{}\", \"score\": {}}}",
                    row + 1,
                    WORDS[(h % WORDS.len() as u64) as usize],
                    (h >> 16) % 1000
                );
            }
            ValueGen::Shaped(shape) => shape.write(h, out),
            ValueGen::TsVector => {
                let _ = write!(
                    out,
                    "'{}' '{}'",
                    WORDS[(h % WORDS.len() as u64) as usize],
                    WORDS[((h >> 16) % WORDS.len() as u64) as usize]
                );
            }
            ValueGen::Format(template) => {
                let r = (row + 1).to_string();
                let rand = format!("{:08x}", h >> 32);
                out.push_str(&template.replace("{row}", &r).replace("{rand}", &rand));
            }
            ValueGen::Array(element) => {
                let n = h % 4;
                out.push('{');
                let mut item = String::new();
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    item.clear();
                    if element.write(mix(h ^ (i + 1)), row, &mut item) {
                        out.push('"');
                        for c in item.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    } else {
                        out.push_str("NULL");
                    }
                }
                out.push('}');
            }
        }
        true
    }
}

fn write_text(h: u64, max_len: Option<usize>, min_len: usize, like: &[String], out: &mut String) {
    let start = out.len();
    let words = 1 + (h % 3) as usize;
    let mut fill = String::new();
    for i in 0..words {
        if i > 0 {
            fill.push(' ');
        }
        fill.push_str(WORDS[(mix(h ^ i as u64) % WORDS.len() as u64) as usize]);
    }
    let mut value = match like.first() {
        Some(pattern) => super::check::like_value(pattern, &fill),
        None => fill,
    };
    while value.chars().count() < min_len {
        value.push('x');
    }
    if let Some(max) = max_len
        && value.chars().count() > max
        && like.is_empty()
    {
        value = value.chars().take(max).collect();
    }
    out.push_str(&value);
    let _ = start;
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (a longer literal: its date part).
pub fn parse_date(text: &str) -> Option<i64> {
    let date = text.get(..10)?;
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // days_from_civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Seconds since the epoch of a timestamp literal (`YYYY-MM-DD[ HH:MM[:SS]]`, zone ignored).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let days = parse_date(text)?;
    let time = text.get(11..).unwrap_or("");
    let mut secs = 0i64;
    for (i, part) in time.split(':').take(3).enumerate() {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            break;
        }
        let n: i64 = digits.parse().ok()?;
        secs += n * [3600, 60, 1][i];
    }
    Some(days * 86_400 + secs)
}

pub fn format_date(days: i64) -> String {
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn format_timestamp(secs: i64, tz: bool, out: &mut String) {
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    out.push_str(&format_date(days));
    let _ = write!(out, " {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if tz {
        out.push_str("+00");
    }
}

pub fn format_uuid(a: u64, b: u64, out: &mut String) {
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000; // version 4
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000; // variant
    let _ = write!(
        out,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    );
}

/// How a unique column gets a distinct value per row (row-number derived).
#[derive(Debug, Clone)]
pub enum UniqueGen {
    /// `start + row`.
    Int {
        start: i64,
    },
    /// `prefix` + the row number in base 36 (lower case, so `citext` and `lower()` keys
    /// stay distinct), within `max_len`; `suffix` after it (an email's domain).
    Text {
        prefix: String,
        suffix: String,
        pad: usize,
    },
    /// The table's key in the first half, the row in the last 48 bits.
    Uuid {
        table: u64,
    },
    Date {
        start: i64,
    },
    Timestamp {
        start: i64,
        tz: bool,
    },
    Bytea,
    Inet,
}

impl UniqueGen {
    pub fn write(&self, row: u64, out: &mut String) {
        match self {
            UniqueGen::Int { start } => {
                let _ = write!(out, "{}", *start as i128 + row as i128);
            }
            UniqueGen::Text {
                prefix,
                suffix,
                pad,
            } => {
                out.push_str(prefix);
                let digits = base36(row + 1);
                for _ in digits.len()..*pad {
                    out.push('0');
                }
                out.push_str(&digits);
                out.push_str(suffix);
            }
            UniqueGen::Uuid { table } => format_uuid(*table, row, out),
            UniqueGen::Date { start } => out.push_str(&format_date(start + row as i64)),
            UniqueGen::Timestamp { start, tz } => {
                format_timestamp(start + row as i64 * 60, *tz, out)
            }
            UniqueGen::Bytea => {
                let _ = write!(out, "\\x{:016x}", row);
            }
            UniqueGen::Inet => {
                let _ = write!(
                    out,
                    "{}.{}.{}.{}",
                    10 + (row >> 24) % 200,
                    (row >> 16) & 0xff,
                    (row >> 8) & 0xff,
                    row & 0xff
                );
            }
        }
    }
}

pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for text in ["1970-01-01", "2000-02-29", "2024-12-31", "1899-03-01"] {
            let days = parse_date(text).unwrap();
            assert_eq!(format_date(days), text);
        }
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_timestamp("1970-01-01 01:00:05+00"), Some(3605));
    }

    #[test]
    fn values_are_deterministic_and_in_range() {
        let g = ValueGen::Int { lo: 5, hi: 7 };
        for row in 0..200 {
            let mut a = String::new();
            g.write(hash(1, row, 0), row, &mut a);
            let v: i64 = a.parse().unwrap();
            assert!((5..=7).contains(&v));
            let mut b = String::new();
            g.write(hash(1, row, 0), row, &mut b);
            assert_eq!(a, b);
        }
        let r = ValueGen::Real {
            lo: 0.5,
            hi: 1.0,
            scale: Some(2),
        };
        for row in 0..200 {
            let mut a = String::new();
            r.write(hash(2, row, 0), row, &mut a);
            let v: f64 = a.parse().unwrap();
            assert!((0.5..=1.0).contains(&v), "{a}");
        }
        let mut u = String::new();
        UniqueGen::Uuid { table: 7 }.write(3, &mut u);
        assert_eq!(u.len(), 36);
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }
}
