//! `ipv4` and `ipv6`: addresses drawn from the seed, on `inet`, `cidr` and text columns.
//!
//! IPv4 addresses are public-looking unicast ones (first octet 1–223, without 10 and 127);
//! IPv6 ones are in the documentation prefix 2001:db8::/32, with 96 drawn bits. A network
//! prefix length on the input (`/24`) is kept when it fits the output's family, and on `cidr`
//! columns the host bits are cleared, as `cidr` requires.

use std::fmt::Write;
use std::net::Ipv6Addr;
use std::sync::Arc;

use super::params::Binder;
use super::seeded::{Draw, Generate, Seeded};
use super::{BindError, Transform, TransformError};
use crate::catalog::TypeKind;

#[derive(Debug)]
struct Ip {
    v6: bool,
    /// `cidr`: always print the prefix, host bits cleared.
    cidr: bool,
}

/// Binds `ipv4`, or `ipv6` when `v6`.
pub(crate) fn bind(b: &Binder<'_>, v6: bool) -> Result<Arc<dyn Transform>, BindError> {
    b.accept()?;
    b.check_locale()?;
    b.unique()?;
    b.fit()?;
    let cidr = *b.kind() == TypeKind::Cidr;
    // The column kind changes the output (prefix printing), so it is part of the identity.
    let identity = b.identity(&[("cidr", cidr.to_string())]);
    let keyed = b.keyed(&identity, true)?;
    Ok(Seeded::arc(Ip { v6, cidr }, keyed, b.max_len()))
}

/// The prefix length written after `/` in `input`, when it is a number.
fn input_prefix(input: &str) -> Option<u32> {
    let (_, prefix) = input.rsplit_once('/')?;
    prefix.trim().parse().ok()
}

/// Writes `bits` as a dotted IPv4 address, as `Ipv4Addr`'s `Display` does, without the
/// formatting machinery: on the demo's anonymized refresh (an address in every event),
/// `write!` of an `Ipv4Addr` was 2 % of restage's CPU, most of this transform's time.
fn push_ipv4(out: &mut String, bits: u32) {
    for (i, octet) in bits.to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

impl Generate for Ip {
    fn generate(
        &self,
        draw: &mut Draw,
        _attempt: u32,
        input: &str,
        out: &mut String,
    ) -> Result<(), TransformError> {
        let max = if self.v6 { 128 } else { 32 };
        // A prefix is kept only when the input is of the same family: an IPv6 /64 means
        // nothing for an IPv4 output.
        let same_family = input.contains(':') == self.v6;
        let prefix = input_prefix(input)
            .filter(|p| *p <= max && same_family)
            .unwrap_or(max);
        if self.v6 {
            let mut bits: u128 = 0x2001_0db8 << 96;
            for shift in [64, 32, 0] {
                bits |= u128::from(draw.below(1 << 32)) << shift;
            }
            if self.cidr {
                bits &= mask128(prefix);
            }
            let _ = write!(out, "{}", Ipv6Addr::from(bits));
        } else {
            let first = loop {
                let o = 1 + draw.below(223) as u32;
                if o != 10 && o != 127 {
                    break o;
                }
            };
            let mut bits: u32 = (first << 24) | (draw.below(1 << 24) as u32);
            if self.cidr {
                bits &= mask32(prefix);
            }
            push_ipv4(out, bits);
        }
        if self.cidr || prefix < max {
            let _ = write!(out, "/{prefix}");
        }
        Ok(())
    }
}

fn mask32(prefix: u32) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

fn mask128(prefix: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::tests::{SECRET, apply, array_of, bind_err, bind_on, col, fake_with, ty};
    use crate::catalog::TypeKind;
    use crate::transform::RuleSpec;

    /// The hand-written writer prints what `Ipv4Addr`'s `Display` prints: every octet
    /// width (one, two, three digits, zero), at each of the four places.
    #[test]
    fn ipv4_is_written_as_display_writes_it() {
        let mut bits: Vec<u32> = vec![0, u32::MAX, 0x0A00_0001, 0x7F00_0001, 0x6463_0A09];
        let mut x: u32 = 0x9E37_79B9;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bits.push(x);
        }
        for octets in [[0u8, 9, 10, 99], [100, 199, 200, 255], [1, 0, 0, 1]] {
            for r in 0..4 {
                let mut o = octets;
                o.rotate_left(r);
                bits.push(u32::from_be_bytes(o));
            }
        }
        for b in bits {
            let mut out = String::new();
            super::push_ipv4(&mut out, b);
            assert_eq!(out, std::net::Ipv4Addr::from(b).to_string());
        }
    }

    fn addr(s: &str) -> IpAddr {
        s.split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn addresses_parse_with_std() {
        for i in 0..300 {
            let v = format!("192.168.{}.{}", i / 256, i % 256);
            let a = fake_with(SECRET, "ipv4", &v);
            assert!(a.parse::<std::net::Ipv4Addr>().is_ok(), "{a}");
            let first: u8 = a.split('.').next().unwrap().parse().unwrap();
            assert!(
                (1..=223).contains(&first) && first != 10 && first != 127,
                "{a}"
            );
            let b = fake_with(SECRET, "ipv6", &v);
            let parsed: std::net::Ipv6Addr = b.parse().unwrap_or_else(|_| panic!("{b}"));
            assert_eq!(parsed.segments()[0..2], [0x2001, 0x0db8]);
        }
    }

    #[test]
    fn inet_keeps_prefix_of_same_family() {
        let inet = ty("inet", TypeKind::Inet);
        let t = bind_on(&RuleSpec::named("ipv4"), &inet, false).unwrap();
        let out = apply(&*t, "10.1.2.3/8").unwrap();
        assert!(out.ends_with("/8"), "{out}");
        let out = apply(&*t, "10.1.2.3").unwrap();
        assert!(!out.contains('/'), "{out}");
        let out = apply(&*t, "2001:db8::1/64").unwrap();
        assert!(!out.contains('/'), "{out}");
        addr(&out);
    }

    #[test]
    fn cidr_clears_host_bits() {
        let cidr = ty("cidr", TypeKind::Cidr);
        let t4 = bind_on(&RuleSpec::named("ipv4"), &cidr, false).unwrap();
        let out = apply(&*t4, "192.168.0.0/16").unwrap();
        assert!(out.ends_with(".0.0/16"), "{out}");
        let out = apply(&*t4, "192.168.7.1/32").unwrap();
        assert!(out.ends_with("/32"), "{out}");
        let t6 = bind_on(&RuleSpec::named("ipv6"), &cidr, false).unwrap();
        let out = apply(&*t6, "2001:db8:1::/48").unwrap();
        assert!(out.ends_with("::/48"), "{out}");
        addr(&out);
    }

    #[test]
    fn type_fit_and_arrays() {
        let int = ty("integer", TypeKind::Int);
        assert_eq!(
            bind_err(&RuleSpec::named("ipv6"), &col(&int)),
            "`ipv6` does not fit column type integer (it takes inet, cidr and text types)"
        );
        let arr = array_of("inet[]", TypeKind::Inet);
        let t = bind_on(&RuleSpec::named("ipv4"), &arr, false).unwrap();
        let out = apply(&*t, "{1.2.3.4,NULL,5.6.7.8/24}").unwrap();
        let parts: Vec<&str> = out
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .collect();
        assert_eq!(parts.len(), 3);
        addr(parts[0]);
        assert_eq!(parts[1], "NULL");
        assert!(parts[2].ends_with("/24"));
        let t = bind_on(&RuleSpec::named("ipv4"), &ty("text", TypeKind::Text), false).unwrap();
        assert_eq!(apply(&*t, ""), Some(String::new()));
    }
}
