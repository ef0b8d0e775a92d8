//! `noise{percent}`: a number moved by up to ±`percent` % of itself, by a factor drawn from the
//! value's seed, on integer, floating-point and numeric columns.
//!
//! The output always loads: integers are rounded and kept in their type's range (`smallint`,
//! `integer`, `bigint`), `real` stays within `f32`, `numeric(p,s)` keeps the input's scale and
//! never grows past `p - s` integer digits, `money` keeps two decimals. `NaN` and the
//! infinities carry nothing and pass through; anything else that does not read as a number is
//! an error.

use std::fmt::Write;
use std::sync::Arc;

use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::{BindError, Transform, TransformError};
use crate::catalog::TypeKind;

/// The factor is drawn in millionths: fine enough for any percent a rule would use.
const PPM: i128 = 1_000_000;

#[derive(Debug)]
struct Noise {
    percent: f64,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// An integer type with its range, or None when the type's name is unknown (a domain).
    Int(Option<(i128, i128)>),
    Float {
        single: bool,
    },
    /// numeric(p,s): the most integer digits, when declared.
    Numeric {
        max_int_digits: Option<u32>,
    },
    Money,
}

pub(crate) fn bind(b: &Binder<'_>) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    let percent = b.positive("percent")?.ok_or_else(|| b.missing("percent"))?;
    b.check_locale()?;
    b.refuse_unique("two numbers can be moved onto the same one")?;
    let name = b.column.ty.name.trim_end_matches("[]");
    let shape = match b.kind() {
        TypeKind::Int => Shape::Int(match name {
            "smallint" => Some((i16::MIN.into(), i16::MAX.into())),
            "integer" => Some((i32::MIN.into(), i32::MAX.into())),
            "bigint" => Some((i64::MIN.into(), i64::MAX.into())),
            "oid" => Some((0, u32::MAX.into())),
            _ => None,
        }),
        TypeKind::Float => Shape::Float {
            single: name == "real",
        },
        TypeKind::Numeric if name == "money" => Shape::Money,
        TypeKind::Numeric => Shape::Numeric {
            max_int_digits: numeric_int_digits(name),
        },
        _ => {
            b.fit()?;
            unreachable_shape()
        }
    };
    let identity = b.identity(&[("percent", percent.to_string())]);
    let keyed = b.keyed(&identity, false)?;
    Ok(Seeded::arc(Noise { percent, shape }, keyed, None))
}

/// Only reached after `fit()` returned its error (the declaration fits no other kind);
/// keeps `bind` free of panics.
fn unreachable_shape() -> Shape {
    Shape::Numeric {
        max_int_digits: None,
    }
}

/// `p - s` of `numeric(p,s)` / `numeric(p)`, None for plain `numeric`.
fn numeric_int_digits(name: &str) -> Option<u32> {
    let inner = name.strip_prefix("numeric(")?.strip_suffix(')')?;
    let mut parts = inner.split(',').map(|p| p.trim().parse::<i64>().ok());
    let precision = parts.next()??;
    let scale = parts.next().flatten().unwrap_or(0);
    u32::try_from((precision - scale).max(0)).ok()
}

impl Generate for Noise {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        let not_a_number = || TransformError::new("a value is not a number");
        let value = input.trim();
        let lower = value.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "nan" | "infinity" | "-infinity" | "+infinity" | "inf" | "-inf"
        ) {
            out.push_str(value);
            return Ok(());
        }
        // u uniform in [-percent, +percent] %, in millionths.
        let span = (self.percent / 100.0 * PPM as f64).round() as i128;
        let ppm = draw.below((2 * span + 1) as u64) as i128 - span;
        match self.shape {
            Shape::Int(range) => {
                // Integer types hold at most 64 bits: parsing as i64 also bounds the product.
                let x = i128::from(value.parse::<i64>().map_err(|_| not_a_number())?);
                let (lo, hi) = range.unwrap_or_else(|| narrowest_range(x));
                let y = (x + div_round(x * ppm, PPM)).clamp(lo, hi);
                let _ = write!(out, "{y}");
            }
            Shape::Float { single } => {
                let x: f64 = value.parse().map_err(|_| not_a_number())?;
                let y = x * (1.0 + ppm as f64 / PPM as f64);
                if single {
                    let y = (y as f32).clamp(f32::MIN, f32::MAX);
                    write_float(f64::from(y), Some(y), out);
                } else {
                    write_float(y.clamp(f64::MIN, f64::MAX), None, out);
                }
            }
            Shape::Numeric { max_int_digits } => {
                let decimal = Decimal::read(value).ok_or_else(not_a_number)?;
                decimal.noised(ppm).write(max_int_digits, out);
            }
            Shape::Money => {
                let decimal = Decimal::read_money(value).ok_or_else(not_a_number)?;
                // money is a count of cents in 64 bits, printed with two decimals.
                let cents = match decimal.noised(ppm).rescaled(2) {
                    Decimal::Exact { mantissa, .. } => mantissa,
                    Decimal::Float(f) => (f * 100.0).round() as i128,
                };
                let cents = cents.clamp(i64::MIN.into(), i64::MAX.into());
                Decimal::Exact {
                    mantissa: cents,
                    scale: 2,
                }
                .write(None, out);
            }
        }
        Ok(())
    }

    fn keeps_empty(&self) -> bool {
        false
    }
}

/// The narrowest of smallint, integer, bigint holding `x`: for integer domains, whose base
/// type is unknown here, this never produces a value the input's own type could not hold.
fn narrowest_range(x: i128) -> (i128, i128) {
    for (lo, hi) in [
        (i128::from(i16::MIN), i128::from(i16::MAX)),
        (i128::from(i32::MIN), i128::from(i32::MAX)),
    ] {
        if (lo..=hi).contains(&x) {
            return (lo, hi);
        }
    }
    (i64::MIN.into(), i64::MAX.into())
}

/// `a / b` rounded half away from zero (`b` > 0).
fn div_round(a: i128, b: i128) -> i128 {
    let q = a / b;
    let r = a % b;
    if r.abs() * 2 >= b { q + a.signum() } else { q }
}

fn write_float(y: f64, single: Option<f32>, out: &mut String) {
    // Plain notation for ordinary magnitudes, exponent notation otherwise (both are accepted
    // by float input; plain notation of 1e300 would be 301 digits).
    let plain = y == 0.0 || (1e-5..1e16).contains(&y.abs());
    match (single, plain) {
        (Some(s), true) => {
            let _ = write!(out, "{s}");
        }
        (Some(s), false) => {
            let _ = write!(out, "{s:e}");
        }
        (None, true) => {
            let _ = write!(out, "{y}");
        }
        (None, false) => {
            let _ = write!(out, "{y:e}");
        }
    }
}

/// A decimal number as written: sign, digits, scale. Large ones (more than 30 digits, or an
/// exponent) are carried as a float: noise does not need their last digits.
#[derive(Debug, Clone, PartialEq)]
enum Decimal {
    Exact { mantissa: i128, scale: u32 },
    Float(f64),
}

impl Decimal {
    fn read(text: &str) -> Option<Decimal> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
        let plain = !(int_part.is_empty() && frac_part.is_empty())
            && int_part.bytes().all(|b| b.is_ascii_digit())
            && frac_part.bytes().all(|b| b.is_ascii_digit());
        if plain && int_part.len() + frac_part.len() <= 30 {
            let digits = format!("{int_part}{frac_part}");
            let magnitude: i128 = if digits.is_empty() {
                0
            } else {
                digits.parse().ok()?
            };
            return Some(Decimal::Exact {
                mantissa: if negative { -magnitude } else { magnitude },
                scale: frac_part.len() as u32,
            });
        }
        let f: f64 = text.parse().ok()?;
        f.is_finite().then_some(Decimal::Float(f))
    }

    /// money as printed with a C or English `lc_monetary`: `$1,234.56`, `-$1.00`, `($1.00)`.
    fn read_money(text: &str) -> Option<Decimal> {
        let negative = text.contains('-') || text.contains('(');
        let cleaned: String = text
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if cleaned.is_empty() {
            return None;
        }
        let signed = if negative {
            format!("-{cleaned}")
        } else {
            cleaned
        };
        Decimal::read(&signed)
    }

    fn noised(&self, ppm: i128) -> Decimal {
        match *self {
            Decimal::Exact { mantissa, scale } => Decimal::Exact {
                mantissa: mantissa + div_round(mantissa * ppm, PPM),
                scale,
            },
            Decimal::Float(f) => Decimal::Float(f * (1.0 + ppm as f64 / PPM as f64)),
        }
    }

    fn rescaled(&self, to: u32) -> Decimal {
        match *self {
            Decimal::Exact { mantissa, scale } if scale > to => Decimal::Exact {
                mantissa: div_round(mantissa, 10i128.pow(scale - to)),
                scale: to,
            },
            Decimal::Exact { mantissa, scale } => Decimal::Exact {
                mantissa: mantissa * 10i128.pow(to - scale),
                scale: to,
            },
            Decimal::Float(f) => Decimal::Float(f),
        }
    }

    /// Writes the number with its scale, at most `max_int_digits` integer digits (the largest
    /// such number when it grew past them).
    fn write(&self, max_int_digits: Option<u32>, out: &mut String) {
        match *self {
            Decimal::Exact { mantissa, scale } => {
                let mut magnitude = mantissa.unsigned_abs();
                if let Some(max) = max_int_digits {
                    let limit = 10u128.checked_pow(max + scale).map(|p| p - 1);
                    if let Some(limit) = limit {
                        magnitude = magnitude.min(limit);
                    }
                }
                let digits = magnitude.to_string();
                let scale = scale as usize;
                let digits = format!("{digits:0>width$}", width = scale + 1);
                if mantissa < 0 && magnitude != 0 {
                    out.push('-');
                }
                let (int_part, frac_part) = digits.split_at(digits.len() - scale);
                out.push_str(int_part);
                if scale > 0 {
                    out.push('.');
                    out.push_str(frac_part);
                }
            }
            Decimal::Float(f) => {
                let f = match max_int_digits {
                    Some(max) if max < 300 => {
                        let limit = 10f64.powi(max as i32) - 1.0;
                        f.clamp(-limit, limit)
                    }
                    _ => f,
                };
                let _ = write!(out, "{f}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{apply, array_of, bind_err, bind_on, col, spec, text_col, ty};
    use super::*;
    use crate::transform::RuleSpec;

    fn noise(type_name: &str, kind: TypeKind, percent: f64, value: &str) -> String {
        let t = bind_on(
            &RuleSpec::named("noise").with("percent", percent),
            &ty(type_name, kind),
            false,
        )
        .unwrap();
        apply(&*t, value).unwrap()
    }

    #[test]
    fn integers_stay_within_percent_and_range() {
        for i in 1..300i64 {
            let x = i * 1000;
            let y: i64 = noise("integer", TypeKind::Int, 10.0, &x.to_string())
                .parse()
                .unwrap();
            assert!((y - x).abs() <= x / 10, "{x} → {y}");
        }
        let small: i64 = noise("smallint", TypeKind::Int, 50.0, "32767")
            .parse()
            .unwrap();
        assert!(small <= 32767);
        let big = noise("bigint", TypeKind::Int, 50.0, "9223372036854775807");
        assert!(big.parse::<i64>().is_ok(), "{big}");
        // A domain over integer: kept within the narrowest range holding the input.
        let d = noise("public.small_count", TypeKind::Int, 50.0, "32000");
        assert!(d.parse::<i16>().is_ok(), "{d}");
        assert_eq!(noise("integer", TypeKind::Int, 10.0, "0"), "0");
    }

    #[test]
    fn floats() {
        let y: f64 = noise("double precision", TypeKind::Float, 5.0, "100.5")
            .parse()
            .unwrap();
        assert!((95.4..=105.6).contains(&y), "{y}");
        let y = noise("double precision", TypeKind::Float, 5.0, "1e+300");
        assert!(y.parse::<f64>().unwrap().is_finite(), "{y}");
        let r = noise("real", TypeKind::Float, 50.0, "3.4028235e+38");
        assert!(r.parse::<f32>().unwrap().is_finite(), "{r}");
        assert_eq!(noise("real", TypeKind::Float, 5.0, "NaN"), "NaN");
        assert_eq!(
            noise("double precision", TypeKind::Float, 5.0, "-Infinity"),
            "-Infinity"
        );
    }

    #[test]
    fn numerics_keep_scale_and_precision() {
        for v in ["12.50", "0.01", "-1234.5678", "100"] {
            let out = noise("numeric", TypeKind::Numeric, 10.0, v);
            let scale = v.split_once('.').map_or(0, |(_, f)| f.len());
            let out_scale = out.split_once('.').map_or(0, |(_, f)| f.len());
            assert_eq!(scale, out_scale, "{v} → {out}");
        }
        for _ in 0..50 {
            let out = noise("numeric(5,2)", TypeKind::Numeric, 50.0, "999.99");
            assert!(out.parse::<f64>().unwrap() <= 999.99, "{out}");
        }
        let huge = "123456789012345678901234567890123456789.5";
        let out = noise("numeric", TypeKind::Numeric, 1.0, huge);
        assert!(out.parse::<f64>().is_ok(), "{out}");
        assert_eq!(noise("numeric", TypeKind::Numeric, 5.0, "NaN"), "NaN");
        assert_eq!(noise("numeric", TypeKind::Numeric, 5.0, "-0.00"), "0.00");
    }

    #[test]
    fn money() {
        let out = noise("money", TypeKind::Numeric, 10.0, "$1,234.56");
        let v: f64 = out.parse().unwrap();
        assert!((1111.0..=1358.1).contains(&v), "{out}");
        assert_eq!(out.split_once('.').unwrap().1.len(), 2);
        let out = noise("money", TypeKind::Numeric, 10.0, "-$10.00");
        assert!(out.starts_with('-'), "{out}");
    }

    #[test]
    fn bad_values_are_errors() {
        let t = bind_on(
            &RuleSpec::named("noise").with("percent", 5),
            &ty("integer", TypeKind::Int),
            false,
        )
        .unwrap();
        let mut out = String::new();
        assert_eq!(
            t.apply("12a", &mut out).unwrap_err().0,
            "a value is not a number"
        );
        assert_eq!(
            t.apply("", &mut out).unwrap_err().0,
            "a value is not a number"
        );
        assert_eq!(
            t.apply("99999999999999999999999999999999999999999999", &mut out)
                .unwrap_err()
                .0,
            "a value is not a number"
        );
    }

    #[test]
    fn errors() {
        let int = ty("integer", TypeKind::Int);
        assert_eq!(
            bind_err(&RuleSpec::named("noise"), &col(&int)),
            "`noise` needs parameter `percent`"
        );
        assert_eq!(
            bind_err(&spec("{ transform: noise, percent: -5 }"), &col(&int)),
            "`noise`: parameter `percent` must be a number above 0 and at most 100 (got -5)"
        );
        assert_eq!(
            bind_err(&spec("{ transform: noise, percent: 5 }"), &text_col()),
            "`noise` does not fit column type text (it takes integer, floating-point and numeric types)"
        );
        assert_eq!(
            bind_err(
                &spec("{ transform: noise, percent: 5, unique: true }"),
                &col(&int)
            ),
            "`noise`: parameter `unique` cannot be true for `noise`: two numbers can be moved onto the same one"
        );
    }

    #[test]
    fn arrays_and_null() {
        let arr = array_of("integer[]", TypeKind::Int);
        let t = bind_on(&spec("{ transform: noise, percent: 10 }"), &arr, false).unwrap();
        let out = apply(&*t, "{{100,NULL},{200,300}}").unwrap();
        assert!(out.starts_with("{{") && out.contains(",NULL},{"), "{out}");
        let mut null = String::new();
        assert_eq!(
            t.apply_null(&mut null).unwrap(),
            crate::transform::Output::Null
        );
    }

    #[test]
    fn numeric_digits_from_type_name() {
        assert_eq!(numeric_int_digits("numeric(5,2)"), Some(3));
        assert_eq!(numeric_int_digits("numeric(7)"), Some(7));
        assert_eq!(numeric_int_digits("numeric"), None);
    }
}
