//! The shape of a json/jsonb column, learned from a sample of production's documents, and
//! documents generated in that shape (issue 18: "json from a sample shape").
//!
//! A shape keeps what a query plan and an application see of a document — which keys it has
//! and how often, what type each value is (in what proportion), how long strings and arrays
//! are, the range of numbers — and nothing else: no string value, no key that only a few
//! documents have. A key must be in at least [`MIN_KEY_DOCUMENTS`] of the sampled documents
//! and in [`MIN_KEY_SHARE`] of the objects at its place: documents that use data as keys
//! (`{"jane@corp.com": …}`) give no key. Only columns without a rule are sampled (a ruled
//! column is personal by its rule), and only when production may be read (not from a schema
//! archive). Generation is deterministic from the value's hash, like every other generator.

use std::fmt::Write;

use super::values::{WORDS, mix};
use crate::transform::json::{Json, parse};

/// Documents sampled per column.
pub const SAMPLE_DOCUMENTS: i64 = 200;
/// The fewest sampled documents a key must be in to be kept.
pub const MIN_KEY_DOCUMENTS: u32 = 2;
/// The least share of the objects at a place a key must be in to be kept.
pub const MIN_KEY_SHARE: f64 = 0.05;
/// Deeper levels of a document are not learned (generated as null).
const MAX_DEPTH: usize = 8;
/// Most keys kept per object.
const MAX_KEYS: usize = 64;
/// Longest key kept, in bytes.
const MAX_KEY_LEN: usize = 64;
/// Longest array generated.
const MAX_ITEMS: usize = 8;

/// What the values at one place of the sampled documents were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    /// Values seen here, of each kind.
    nulls: u32,
    bools: u32,
    numbers: u32,
    strings: u32,
    arrays: u32,
    objects: u32,
    /// Every number seen was a whole number.
    whole: bool,
    lo: f64,
    hi: f64,
    longest_string: usize,
    longest_array: usize,
    /// The elements of the arrays seen here.
    items: Option<Box<Shape>>,
    /// The members of the objects seen here: key, how many objects had it, its values.
    members: Vec<(String, u32, Shape)>,
}

impl Shape {
    /// The shape of sampled documents; None when none of them reads as JSON.
    pub fn learn<'a>(documents: impl IntoIterator<Item = &'a str>) -> Option<Shape> {
        let mut shape = Shape::default();
        let mut seen = 0u32;
        for text in documents {
            if let Ok(doc) = parse(text) {
                shape.add(&doc, 0);
                seen += 1;
            }
        }
        if seen == 0 {
            return None;
        }
        shape.prune();
        Some(shape)
    }

    fn add(&mut self, value: &Json, depth: usize) {
        match value {
            Json::Null => self.nulls += 1,
            Json::Bool(_) => self.bools += 1,
            Json::Number(n) => {
                let v: f64 = n.parse().unwrap_or(0.0);
                let whole = !n.contains(['.', 'e', 'E']);
                if self.numbers == 0 {
                    self.whole = whole;
                    self.lo = v;
                    self.hi = v;
                } else {
                    self.whole &= whole;
                    self.lo = self.lo.min(v);
                    self.hi = self.hi.max(v);
                }
                self.numbers += 1;
            }
            Json::String(s) => {
                self.strings += 1;
                self.longest_string = self.longest_string.max(s.chars().count());
            }
            Json::Array(items) => {
                self.arrays += 1;
                self.longest_array = self.longest_array.max(items.len());
                if depth < MAX_DEPTH {
                    let into = self.items.get_or_insert_with(Box::default);
                    for item in items {
                        into.add(item, depth + 1);
                    }
                }
            }
            Json::Object(members) => {
                self.objects += 1;
                if depth >= MAX_DEPTH {
                    return;
                }
                let mut counted: Vec<&str> = Vec::new();
                for (key, member) in members {
                    let at = match self.members.iter().position(|(k, ..)| k == key) {
                        Some(i) => i,
                        None => {
                            self.members.push((key.clone(), 0, Shape::default()));
                            self.members.len() - 1
                        }
                    };
                    // A duplicated key counts once per object.
                    if !counted.contains(&key.as_str()) {
                        self.members[at].1 += 1;
                        counted.push(key);
                    }
                    self.members[at].2.add(member, depth + 1);
                }
            }
        }
    }

    /// Drops the keys too few documents have (see the module header), at every level.
    fn prune(&mut self) {
        let objects = self.objects;
        self.members.retain(|(key, n, _)| {
            *n >= MIN_KEY_DOCUMENTS
                && f64::from(*n) >= MIN_KEY_SHARE * f64::from(objects)
                && key.len() <= MAX_KEY_LEN
        });
        self.members.truncate(MAX_KEYS);
        for (_, _, member) in &mut self.members {
            member.prune();
        }
        if let Some(items) = &mut self.items {
            items.prune();
        }
    }

    /// The keys kept at the top level, for the tests and the report.
    pub fn keys(&self) -> Vec<&str> {
        self.members.iter().map(|(k, ..)| k.as_str()).collect()
    }

    /// Writes a document of this shape for hash `h`.
    pub fn write(&self, h: u64, out: &mut String) {
        self.write_at(h, 0, out);
    }

    fn write_at(&self, h: u64, depth: usize, out: &mut String) {
        let kinds = [
            self.nulls,
            self.bools,
            self.numbers,
            self.strings,
            self.arrays,
            self.objects,
        ];
        let total: u64 = kinds.iter().map(|&k| u64::from(k)).sum();
        if total == 0 || depth > MAX_DEPTH {
            out.push_str("null");
            return;
        }
        // A kind in proportion to how often it was seen here.
        let mut pick = mix(h ^ 0x6a73) % total;
        let mut kind = 0;
        for (i, &k) in kinds.iter().enumerate() {
            if pick < u64::from(k) {
                kind = i;
                break;
            }
            pick -= u64::from(k);
        }
        match kind {
            0 => out.push_str("null"),
            1 => out.push_str(if h & 1 == 0 { "true" } else { "false" }),
            2 => {
                let u = (mix(h ^ 0x6e) >> 11) as f64 / (1u64 << 53) as f64;
                let v = self.lo + (self.hi - self.lo) * u;
                if self.whole {
                    let _ = write!(out, "{}", v.round() as i64);
                } else {
                    let _ = write!(out, "{:.2}", v);
                }
            }
            3 => {
                out.push('"');
                let mut len = 0;
                let mut w = mix(h ^ 0x73);
                let most = self.longest_string.max(1);
                loop {
                    let word = WORDS[(w % WORDS.len() as u64) as usize];
                    if len > 0 && len + 1 + word.len() > most {
                        break;
                    }
                    if len > 0 {
                        out.push(' ');
                        len += 1;
                    }
                    let room = most.saturating_sub(len).max(1);
                    let word = &word[..word.len().min(room)];
                    out.push_str(word);
                    len += word.len();
                    w = mix(w);
                    if len >= most || w % 3 == 0 {
                        break;
                    }
                }
                out.push('"');
            }
            4 => {
                out.push('[');
                let longest = self.longest_array.min(MAX_ITEMS) as u64;
                let n = mix(h ^ 0x61) % (longest + 1);
                if let Some(items) = &self.items {
                    for i in 0..n {
                        if i > 0 {
                            out.push(',');
                        }
                        items.write_at(mix(h ^ (i + 1)), depth + 1, out);
                    }
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                let mut first = true;
                for (i, (key, n, member)) in self.members.iter().enumerate() {
                    let k = mix(h ^ ((i as u64 + 1) << 20));
                    // A key in as many of the objects as it was in the sample's.
                    if (k % u64::from(self.objects.max(1))) >= u64::from(*n) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    let _ = write!(out, "{}:", serde_json::Value::String(key.clone()));
                    member.write_at(mix(k), depth + 1, out);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_types_and_sizes_never_values() {
        let docs: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    r#"{{"kind":"k{i}","score":{},"tags":["t{i}","u"],"meta":{{"ok":true}},"secret{i}@mail.test":1{}}}"#,
                    i * 3,
                    if i % 2 == 0 { r#","note":null"# } else { "" }
                )
            })
            .collect();
        let shape = Shape::learn(docs.iter().map(String::as_str)).unwrap();
        assert_eq!(shape.keys(), ["kind", "score", "tags", "meta", "note"]);
        for h in 0..200u64 {
            let mut out = String::new();
            shape.write(mix(h), &mut out);
            let doc: serde_json::Value = serde_json::from_str(&out).expect(&out);
            let obj = doc.as_object().expect("an object");
            assert!(
                !out.contains("secret") && !out.contains("mail.test"),
                "{out}"
            );
            for (k, v) in obj {
                match k.as_str() {
                    "kind" => {
                        // Production's are `k<number>`: none of them comes back.
                        let s = v.as_str().expect("a string");
                        let produced = s
                            .strip_prefix('k')
                            .is_some_and(|n| n.parse::<u32>().is_ok());
                        assert!(!produced, "{out}");
                    }
                    "score" => {
                        let n = v.as_i64().expect("a whole number");
                        assert!((0..=297).contains(&n), "{n}");
                    }
                    "tags" => assert!(v.as_array().unwrap().len() <= 2),
                    "meta" => assert!(v["ok"].is_boolean()),
                    "note" => assert!(v.is_null()),
                    other => panic!("key {other} in {out}"),
                }
            }
        }
        // Same hash, same document.
        let (mut a, mut b) = (String::new(), String::new());
        shape.write(42, &mut a);
        shape.write(42, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn nothing_readable_gives_no_shape_and_mixed_kinds_keep_their_proportions() {
        assert_eq!(Shape::learn(["nope", "{"]), None);
        let shape = Shape::learn(["1", "2", "3", "\"x\""]).unwrap();
        let strings = (0..1000u64)
            .filter(|h| {
                let mut out = String::new();
                shape.write(mix(*h), &mut out);
                out.starts_with('"')
            })
            .count();
        assert!((150..350).contains(&strings), "{strings}");
    }
}
