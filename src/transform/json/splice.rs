//! Applying the path rules while reading the document once: the parts no path reaches are
//! copied to the output as they are read (compact, exactly as [`super::write_json`] would
//! write them), and only a value a path ends at is parsed into a [`Json`] node and given to
//! its rule. No tree of the whole document is built and nothing is allocated for the parts
//! no rule touches (issue 14: the tree cost about 2 µs of the 3.8 µs a demo document took,
//! more than its three rules together).
//!
//! It gives the same output as the tree path ([`super::path::visit`] then
//! [`super::write_json`]) when no value is both the end of one rule's path and on the way of
//! another's (the tree path applies the rules one after the other, so the second would see
//! the first one's output); [`splices`] tells, from the paths alone, and the tree path is
//! kept for the rest. A document that is not valid JSON is an error either way.

use super::path::Step;
use super::value::{MAX_DEPTH, Parser, not_json, too_deep};
use super::write::{write_json, write_string};
use super::{PathRule, transform_node};
use crate::transform::{Observe, TransformError};

/// Where one rule's path is, at a value: the rule's index and how many of its steps are done.
#[derive(Debug, Clone, Copy)]
struct At {
    rule: usize,
    step: usize,
}

/// True when the paths can be applied in one reading ([`apply`]): no value can be both the
/// end of one path and on the way of another (or the end of two). Decided conservatively
/// from the steps: two paths are apart only when, after the same first steps, they name
/// different keys or different indexes. After the same steps both are at the same values
/// (lax mode moves them alike: a key step on an array reaches into its elements without
/// being used up), so different keys or indexes lead into different members or elements,
/// for good. After different steps they may meet anywhere: `$[1].a` and `$.a.b` both reach
/// the `a` of `[null, {"a": …}]`, the second through a lax step that used nothing up.
pub(super) fn splices(rules: &[PathRule]) -> bool {
    let apart = |a: &[Step], b: &[Step]| {
        for pair in a.iter().zip(b) {
            match pair {
                (Step::Key(x), Step::Key(y)) if x != y => return true,
                (Step::Index(x), Step::Index(y)) if x != y => return true,
                (x, y) if x == y => continue,
                _ => return false,
            }
        }
        false
    };
    rules
        .iter()
        .enumerate()
        .all(|(i, a)| rules[i + 1..].iter().all(|b| apart(&a.steps, &b.steps)))
}

/// Applies `rules` to the document `text`, writing the result to `out`.
pub(super) fn apply(
    rules: &[PathRule],
    text: &str,
    out: &mut String,
    observe: &mut dyn Observe,
) -> Result<(), TransformError> {
    let mut splicer = Splicer {
        p: Parser::new(text),
        rules,
        at: (0..rules.len()).map(|rule| At { rule, step: 0 }).collect(),
        key: String::new(),
    };
    splicer.p.skip_ws();
    let all = splicer.at.len();
    splicer.value(0, 0, all, out, observe)?;
    splicer.p.skip_ws();
    if splicer.p.pos != splicer.p.bytes.len() {
        return Err(not_json());
    }
    Ok(())
}

struct Splicer<'a, 'r> {
    p: Parser<'a>,
    rules: &'r [PathRule],
    /// The positions of the paths at the values being read, a range per level (a stack).
    at: Vec<At>,
    /// A key with escapes, unescaped (rare).
    key: String,
}

impl Splicer<'_, '_> {
    /// The value at the reader, with the paths at `self.at[lo..hi]`.
    fn value(
        &mut self,
        depth: usize,
        lo: usize,
        hi: usize,
        out: &mut String,
        observe: &mut dyn Observe,
    ) -> Result<(), TransformError> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        if self.at[lo..hi]
            .iter()
            .any(|a| a.step == self.rules[a.rule].steps.len())
        {
            // A path ends here (only one, and no other goes on: see `splices`): the value
            // becomes a node for its rule, as in the tree path.
            let mut node = self.p.value(depth)?;
            for a in self.at[lo..hi].iter().copied() {
                let rule = &self.rules[a.rule];
                if a.step == rule.steps.len() {
                    transform_node(&mut node, &*rule.transform, rule.slot, observe)?;
                }
            }
            write_json(&node, out);
            return Ok(());
        }
        match self.p.bytes.get(self.p.pos) {
            Some(b'{') => {
                self.p.pos += 1;
                out.push('{');
                self.p.skip_ws();
                if self.p.eat("}") {
                    out.push('}');
                    return Ok(());
                }
                loop {
                    self.p.skip_ws();
                    let base = self.at.len();
                    self.member_key(lo, hi, out)?;
                    self.p.skip_ws();
                    if !self.p.eat(":") {
                        return Err(not_json());
                    }
                    out.push(':');
                    self.p.skip_ws();
                    let top = self.at.len();
                    self.value(depth + 1, base, top, out, observe)?;
                    self.at.truncate(base);
                    self.p.skip_ws();
                    if self.p.eat("}") {
                        out.push('}');
                        return Ok(());
                    }
                    if !self.p.eat(",") {
                        return Err(not_json());
                    }
                    out.push(',');
                }
            }
            Some(b'[') => {
                self.p.pos += 1;
                out.push('[');
                self.p.skip_ws();
                if self.p.eat("]") {
                    out.push(']');
                    return Ok(());
                }
                let mut index = 0;
                loop {
                    self.p.skip_ws();
                    let base = self.at.len();
                    let object = self.p.bytes.get(self.p.pos) == Some(&b'{');
                    for i in lo..hi {
                        let a = self.at[i];
                        let next = match &self.rules[a.rule].steps[a.step] {
                            // Lax mode: a member step reaches into each object element.
                            Step::Key(_) if object => Some(a.step),
                            Step::Key(_) => None,
                            Step::Index(n) if *n == index => Some(a.step + 1),
                            Step::Index(_) => None,
                            Step::Wildcard => Some(a.step + 1),
                        };
                        if let Some(step) = next {
                            self.at.push(At { rule: a.rule, step });
                        }
                    }
                    let top = self.at.len();
                    self.value(depth + 1, base, top, out, observe)?;
                    self.at.truncate(base);
                    self.p.skip_ws();
                    if self.p.eat("]") {
                        out.push(']');
                        return Ok(());
                    }
                    if !self.p.eat(",") {
                        return Err(not_json());
                    }
                    out.push(',');
                    index += 1;
                }
            }
            // A scalar no path ends at.
            _ => self.copy_scalar(out),
        }
    }

    /// Reads a member's key, writes it, and pushes the positions of the paths at its value.
    fn member_key(&mut self, lo: usize, hi: usize, out: &mut String) -> Result<(), TransformError> {
        if self.p.bytes.get(self.p.pos) != Some(&b'"') {
            return Err(not_json());
        }
        let plain = self.p.plain_string()?;
        match plain {
            Some(key) => {
                out.push('"');
                out.push_str(key);
                out.push('"');
            }
            None => {
                self.key = self.p.string()?;
                write_string(&self.key, out);
            }
        }
        let escaped;
        let key: &str = match plain {
            Some(key) => key,
            None => {
                escaped = std::mem::take(&mut self.key);
                &escaped
            }
        };
        for i in lo..hi {
            let a = self.at[i];
            let reaches = match &self.rules[a.rule].steps[a.step] {
                Step::Key(name) => name == key,
                Step::Wildcard => true,
                Step::Index(_) => false,
            };
            if reaches {
                self.at.push(At {
                    rule: a.rule,
                    step: a.step + 1,
                });
            }
        }
        Ok(())
    }

    /// Copies the scalar at the reader, compact (objects and arrays no path is in are read
    /// by [`Splicer::value`] with no path positions, so there is one reader of containers).
    fn copy_scalar(&mut self, out: &mut String) -> Result<(), TransformError> {
        match self.p.bytes.get(self.p.pos) {
            Some(b'"') => self.copy_string(out),
            Some(b't') if self.p.eat("true") => {
                out.push_str("true");
                Ok(())
            }
            Some(b'f') if self.p.eat("false") => {
                out.push_str("false");
                Ok(())
            }
            Some(b'n') if self.p.eat("null") => {
                out.push_str("null");
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let (start, end) = self.p.number_span()?;
                out.push_str(&self.p.text[start..end]);
                Ok(())
            }
            _ => Err(not_json()),
        }
    }

    /// Copies the string at the reader: as it is when it holds no escape, else unescaped and
    /// written again as [`write_json`] writes strings.
    fn copy_string(&mut self, out: &mut String) -> Result<(), TransformError> {
        match self.p.plain_string()? {
            Some(text) => {
                out.push('"');
                out.push_str(text);
                out.push('"');
            }
            None => {
                let text = self.p.string()?;
                write_string(&text, out);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::{parse_path, visit};
    use super::super::tests_support::inner_rule;
    use super::super::value::{Json, parse};
    use super::*;
    use proptest::prelude::*;

    /// Records what the rules met and wrote, in order.
    #[derive(Default, Debug, PartialEq)]
    struct Seen(Vec<(usize, Option<String>, Option<String>)>);

    impl Observe for Seen {
        fn inner(&mut self, slot: usize, input: Option<&str>, output: Option<&str>) {
            self.0
                .push((slot, input.map(str::to_string), output.map(str::to_string)));
        }
    }

    fn rules(paths: &[(&str, &str)]) -> Vec<PathRule> {
        paths
            .iter()
            .enumerate()
            .map(|(slot, (path, rule))| PathRule {
                slot,
                steps: parse_path(path).expect("test path"),
                transform: inner_rule(rule),
            })
            .collect()
    }

    /// The tree path: the whole document parsed, each rule applied in turn, written back.
    fn by_tree(rules: &[PathRule], doc: &str, seen: &mut Seen) -> Result<String, TransformError> {
        let mut node = parse(doc)?;
        for rule in rules {
            visit(&mut node, &rule.steps, &mut |n| {
                transform_node(n, &*rule.transform, rule.slot, seen)
            })?;
        }
        let mut out = String::new();
        write_json(&node, &mut out);
        Ok(out)
    }

    fn by_splice(rules: &[PathRule], doc: &str, seen: &mut Seen) -> Result<String, TransformError> {
        let mut out = String::new();
        apply(rules, doc, &mut out, seen)?;
        Ok(out)
    }

    /// A document written with optional blanks and escapes (`\u00XX` for ASCII letters,
    /// `\/`), so the reader meets every form the tree parser accepts.
    fn write_loose(value: &Json, blank: &str, escape: bool, out: &mut String) {
        let string = |s: &str, out: &mut String| {
            if !escape {
                write_string(s, out);
                return;
            }
            out.push('"');
            for c in s.chars() {
                match c {
                    'a'..='e' => out.push_str(&format!("\\u{:04x}", c as u32)),
                    '/' => out.push_str("\\/"),
                    _ => {
                        let mut one = String::new();
                        write_string(&c.to_string(), &mut one);
                        out.push_str(&one[1..one.len() - 1]);
                    }
                }
            }
            out.push('"');
        };
        match value {
            Json::Object(members) => {
                out.push('{');
                out.push_str(blank);
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        out.push_str(blank);
                    }
                    string(k, out);
                    out.push_str(blank);
                    out.push(':');
                    out.push_str(blank);
                    write_loose(v, blank, escape, out);
                }
                out.push_str(blank);
                out.push('}');
            }
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(blank);
                    write_loose(v, blank, escape, out);
                }
                out.push(']');
            }
            Json::String(s) => string(s, out),
            other => write_json(other, out),
        }
    }

    fn json() -> impl Strategy<Value = Json> {
        let key = prop::sample::select(vec!["a", "b", "c", "e", "q\"x", "/d", "日本"]);
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            prop::sample::select(vec![
                "0",
                "-0",
                "1.50",
                "12",
                "1e10",
                "-2E-3",
                "123456789012345678901234567890"
            ])
            .prop_map(|n| Json::Number(n.to_string())),
            "[a-e/ é\"\\\\\n\t\u{1}]{0,8}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                prop::collection::vec((key.clone().prop_map(str::to_string), inner), 0..5)
                    .prop_map(Json::Object),
            ]
        })
    }

    const PATHS: &[&str] = &[
        "$",
        "$.a",
        "$.b",
        "$.a.b",
        "$.a.c",
        "$.b.a",
        "$.a[0]",
        "$.a[1]",
        "$[0]",
        "$[1].a",
        "$.*",
        "$.a.*",
        "$[*]",
        "$.c[*].a",
        "$.\"q\\\"x\"",
        "$['/d']",
        "$.e[0].b",
        "$.日本",
    ];
    const RULES: &[&str] = &[
        "mask",
        "{ transform: hash, length: 6 }",
        "{ transform: constant, value: '{\"k\":1}' }",
        "{ transform: constant, value: '7' }",
        "set_null",
        "{ transform: noise, percent: 10 }",
        "{ transform: json, paths: { \"$.a\": mask } }",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]
        /// Wherever the paths splice, one reading gives what the tree gives: the same
        /// output (or a failure both ways) and the same values met.
        #[test]
        fn splicing_gives_what_the_tree_gives(
            doc in json(),
            picks in prop::collection::vec((0..PATHS.len(), 0..RULES.len()), 1..4),
            blank in prop::sample::select(vec!["", " ", "\n\t "]),
            escape in any::<bool>(),
        ) {
            // The picks that splice together (the first always does).
            let mut paths: Vec<(&str, &str)> = Vec::new();
            for &(p, r) in &picks {
                paths.push((PATHS[p], RULES[r]));
                if !splices(&rules(&paths)) {
                    paths.pop();
                }
            }
            let rules = rules(&paths);
            let mut text = String::new();
            write_loose(&doc, blank, escape, &mut text);
            let (mut a, mut b) = (Seen::default(), Seen::default());
            let tree = by_tree(&rules, &text, &mut a);
            let spliced = by_splice(&rules, &text, &mut b);
            match (&tree, &spliced) {
                (Ok(t), Ok(s)) => {
                    prop_assert_eq!(t, s, "{}", text);
                    // The tree meets the values rule by rule, the reader in document order:
                    // what is met is the same (observers count, they do not depend on order).
                    a.0.sort();
                    b.0.sort();
                    prop_assert_eq!(&a, &b, "{}", text);
                }
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "{text}: tree {tree:?}, spliced {spliced:?}"),
            }
        }

        /// Invalid documents are refused by both readers.
        #[test]
        fn invalid_documents_fail_both_ways(
            doc in json(),
            cut in 0usize..64,
            junk in prop::sample::select(vec!["", "}", ",", "x", "\"", "[", "01", "\u{1}"]),
        ) {
            let mut text = String::new();
            write_json(&doc, &mut text);
            let at = text.char_indices().map(|(i, _)| i).nth(cut % (text.chars().count() + 1)).unwrap_or(text.len());
            let broken = format!("{}{junk}{}", &text[..at], &text[at..]);
            let rules = rules(&[("$.a", "mask"), ("$.b[*]", "{ transform: hash, length: 6 }")]);
            let tree = parse(&broken).is_ok();
            let spliced = by_splice(&rules, &broken, &mut Seen::default()).is_ok();
            prop_assert_eq!(tree, spliced, "{}", broken);
        }
    }

    /// Paths that may meet are left to the tree: a path ending where another goes on (or
    /// where another ends too), through keys, indexes, wildcards and lax member steps.
    #[test]
    fn overlapping_paths_are_left_to_the_tree() {
        for (a, b, apart) in [
            ("$.a", "$.b", true),
            ("$.a.b", "$.a.c", true),
            ("$[0]", "$[1]", true),
            ("$.a", "$.a.b", false),
            ("$", "$.a", false),
            ("$.a", "$['a']", false),
            ("$.*", "$.a.b", false),
            ("$.x.name", "$.x[0]", false),
            ("$.x.name", "$.x[*]", false),
            // `$.a[*]` on an object `a` reaches its member `c` too.
            ("$.a[*].b", "$.a.c", false),
            ("$.a[*].b", "$.c.b", true),
            // After different steps: `$.a` on an array goes on at its elements.
            ("$[1].a", "$.a.b", false),
            ("$.x[0].a", "$.x.b", false),
            ("$.x[0].a", "$.x[0].b", true),
        ] {
            let rules = rules(&[(a, "mask"), (b, "mask")]);
            assert_eq!(splices(&rules), apart, "{a} and {b}");
        }
        assert!(splices(&rules(&[("$", "mask")])));
    }

    #[test]
    fn deep_documents_are_refused() {
        let rules = rules(&[("$.a", "mask")]);
        let deep = format!(
            "{{\"b\":{}1{}}}",
            "[".repeat(MAX_DEPTH + 2),
            "]".repeat(MAX_DEPTH + 2)
        );
        let err = by_splice(&rules, &deep, &mut Seen::default()).unwrap_err();
        assert!(err.0.contains("nested more than"), "{}", err.0);
    }
}
