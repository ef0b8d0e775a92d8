//! From evidence to findings: what the name says ([`crate::pii::names`]) and what the sampled
//! values say ([`crate::pii::values`]), put together into one confidence per column or JSON path, with the
//! evidence in words and a proposed rule. Pure: the database part is in [`super::sample`].
//!
//! How confidence is computed:
//! - values: for each detector, `precision × (0.5 + 0.5 × share)`, where share is the part of
//!   the non-null sampled values it matched (as a whole or inside text). One email among a
//!   thousand notes is still a medium finding; a column of phone numbers without a checksum
//!   cannot reach the certainty of a column of IBANs.
//! - name and values agreeing: `1 − (1 − name) × (1 − values)`.
//! - a name the values contradict (a column named `email` where none of at least 10 sampled
//!   values is an email, for the categories values can recognise): the name's confidence
//!   × 0.6.
//! - the strongest category wins; the others are listed as further evidence.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::catalog::{Column, ColumnType, QualifiedName, TypeKind};

use super::propose::{self, Proposal, Target};
use crate::pii::names::round2;
use crate::pii::values::{DETECTORS, Detector, JsonTally, PathTally, Tally};
use crate::pii::{Category, Level, NameFinding, classify_name};

/// How the rules cover a column today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coverage {
    /// A rule names it, or a wildcard other than `keep` covers it: not scanned.
    Covered,
    /// Only a `"*": keep` covers it: reported when it looks personal with at least medium
    /// confidence, since that is how personal data leaks past rules.
    WildcardKeep,
    /// No rule covers it.
    Uncovered,
}

/// One column (or JSON path) that looks personal.
#[derive(Debug, Clone)]
pub struct Finding {
    pub table: QualifiedName,
    pub column: String,
    /// A JSON path inside a json/jsonb column (`$.contact.email`).
    pub path: Option<String>,
    pub category: Category,
    pub confidence: f32,
    pub level: Level,
    /// Why, in words: counts and dictionary words, never a sampled value.
    pub evidence: Vec<String>,
    pub proposed: Proposal,
    /// `Some("*: keep")` when a wildcard keep covers the column today.
    pub covered_by: Option<&'static str>,
    /// Written as a rule by `--write`; otherwise listed there as a comment (a low-confidence
    /// finding, or a proposal no rule could be found to pass for, see [`super::fit`]).
    pub written: bool,
    /// Why it is a comment, when it is one.
    pub not_written: Option<String>,
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(11))?;
        m.serialize_entry("table", &self.table.to_string())?;
        m.serialize_entry("column", &self.column)?;
        m.serialize_entry("path", &self.path)?;
        m.serialize_entry("category", &self.category)?;
        m.serialize_entry("confidence", &self.confidence)?;
        m.serialize_entry("level", &self.level)?;
        m.serialize_entry("evidence", &self.evidence)?;
        m.serialize_entry("proposed", &self.proposed.to_json())?;
        m.serialize_entry("covered_by", &self.covered_by)?;
        m.serialize_entry("written", &self.written)?;
        m.serialize_entry("not_written", &self.not_written)?;
        m.end()
    }
}

/// What was sampled from one column.
#[derive(Debug, Clone)]
pub enum Sampled {
    /// Text values (or the elements of a text array).
    Values(Tally),
    /// json/jsonb documents, by path.
    Json(JsonTally),
}

/// A column to judge.
#[derive(Debug, Clone, Copy)]
pub struct ColumnFacts<'a> {
    pub table: &'a QualifiedName,
    pub column: &'a Column,
    pub unique: bool,
    pub coverage: Coverage,
}

/// Below this many non-null values, absence of matches says little.
const MIN_VALUES_TO_CONTRADICT: u32 = 10;
/// Factor on a name finding the values contradict.
const CONTRADICTED: f32 = 0.6;

/// The findings for one column: none, one, or one per JSON path.
pub fn judge(facts: ColumnFacts<'_>, sample: Option<&Sampled>) -> Vec<Finding> {
    if facts.coverage == Coverage::Covered {
        return Vec::new();
    }
    let col = facts.column;
    let name = classify_name(&col.name, &col.ty.kind);
    let unit = if col.ty.array { "elements" } else { "values" };
    let target = Target {
        ty: &col.ty,
        not_null: col.not_null,
        unique: facts.unique,
    };
    let mut out = Vec::new();
    match sample {
        Some(Sampled::Json(json)) => {
            for (path, pt) in &json.paths {
                if let Some(j) = judge_path(pt) {
                    out.push(finding(facts, Some(path.clone()), j));
                }
            }
            if out.is_empty() {
                if let Some(name) = name {
                    let mut j = name_only(&name, "name", col, target);
                    j.evidence.push(format!(
                        "no personal value found inside {} sampled documents",
                        json.documents
                    ));
                    out.push(finding(facts, None, j));
                }
            }
        }
        Some(Sampled::Values(tally)) => {
            if let Some(j) = judge_values(name.as_ref(), "name", tally, unit, target) {
                out.push(finding(facts, None, j));
            }
        }
        None => {
            if let Some(name) = name {
                out.push(finding(facts, None, name_only(&name, "name", col, target)));
            }
        }
    }
    // A wildcard keep is a decision someone made: only say it is wrong when fairly sure.
    if facts.coverage == Coverage::WildcardKeep {
        out.retain(|f| f.level >= Level::Medium);
    }
    out
}

/// A judgement before it is attached to a column.
#[derive(Debug, Clone)]
struct Judgement {
    category: Category,
    confidence: f32,
    evidence: Vec<String>,
    proposed: Proposal,
}

fn finding(facts: ColumnFacts<'_>, path: Option<String>, j: Judgement) -> Finding {
    let confidence = round2(j.confidence);
    Finding {
        table: facts.table.clone(),
        column: facts.column.name.clone(),
        path,
        category: j.category,
        confidence,
        // `judge_*` only return judgements at or above low.
        level: Level::of(confidence).unwrap_or(Level::Low),
        evidence: j.evidence,
        proposed: j.proposed,
        covered_by: (facts.coverage == Coverage::WildcardKeep).then_some("*: keep"),
        // Low-confidence findings are listed, not ruled (lookup-table `name` columns are
        // labels far more often than people); strict mode's own demands are added back by
        // [`super::fit::settle`].
        written: confidence >= Level::MEDIUM,
        not_written: (confidence < Level::MEDIUM)
            .then(|| "low confidence: review, and uncomment if it is personal".to_string()),
    }
}

fn name_line(name: &NameFinding, what: &str) -> String {
    let lang = if name.lang == "*" {
        String::new()
    } else {
        format!(", {}", name.lang)
    };
    format!(
        "{what} looks like {} (`{}`{lang})",
        name.category.with_article(),
        name.matched
    )
}

/// A judgement from the name alone; the caller picks the rule.
fn name_only(name: &NameFinding, what: &str, col: &Column, target: Target<'_>) -> Judgement {
    let mut evidence = vec![name_line(name, what)];
    if matches!(col.ty.kind, TypeKind::Json | TypeKind::Jsonb) {
        evidence.push("without paths a rule can only replace the whole document".to_string());
    }
    Judgement {
        category: name.category,
        confidence: name.confidence,
        evidence,
        proposed: propose::propose(name.category, target, false),
    }
}

/// One detector's evidence in a tally.
#[derive(Debug, Clone, Copy)]
struct Hit {
    detector: Detector,
    whole: u32,
    within: u32,
    confidence: f32,
}

fn hits(tally: &Tally) -> Vec<Hit> {
    if tally.values == 0 {
        return Vec::new();
    }
    DETECTORS
        .iter()
        .filter_map(|&d| {
            let (whole, within) = (tally.whole[d.index()], tally.within[d.index()]);
            if whole + within == 0 || tally.suppressed(d) {
                return None;
            }
            let share = (whole + within) as f32 / tally.values as f32;
            Some(Hit {
                detector: d,
                whole,
                within,
                confidence: d.precision() * (0.5 + 0.5 * share),
            })
        })
        .collect()
}

fn hit_lines(hit: &Hit, total: u32, unit: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let noun = hit.detector.plural();
    if hit.whole > 0 {
        lines.push(format!("{}/{total} sampled {unit} are {noun}", hit.whole));
    }
    if hit.within > 0 {
        lines.push(format!(
            "{}/{total} sampled {unit} contain {noun}",
            hit.within
        ));
    }
    lines
}

/// Categories values can recognise: a name of one of these with no matching value among
/// enough samples is probably wrong.
fn recognisable(category: Category) -> bool {
    matches!(
        category,
        Category::Email
            | Category::Phone
            | Category::Iban
            | Category::CardNumber
            | Category::IpAddress
    )
}

/// Name and value evidence for a text column or a JSON path.
fn judge_values(
    name: Option<&NameFinding>,
    what: &str,
    tally: &Tally,
    unit: &str,
    target: Target<'_>,
) -> Option<Judgement> {
    let hits = hits(tally);
    let mut by_category: BTreeMap<Category, Vec<Hit>> = BTreeMap::new();
    for h in &hits {
        by_category
            .entry(h.detector.category())
            .or_default()
            .push(*h);
    }

    struct Candidate {
        category: Category,
        confidence: f32,
        evidence: Vec<String>,
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    for (category, hs) in &by_category {
        let values = hs.iter().map(|h| h.confidence).fold(0.0, f32::max);
        let mut evidence = Vec::new();
        let mut confidence = values;
        if let Some(n) = name.filter(|n| n.category == *category) {
            evidence.push(name_line(n, what));
            confidence = 1.0 - (1.0 - n.confidence) * (1.0 - values);
        }
        for h in hs {
            evidence.extend(hit_lines(h, tally.values, unit));
        }
        candidates.push(Candidate {
            category: *category,
            confidence,
            evidence,
        });
    }
    if let Some(n) = name.filter(|n| !by_category.contains_key(&n.category)) {
        let mut evidence = vec![name_line(n, what)];
        let mut confidence = n.confidence;
        if tally.values == 0 {
            evidence.push(format!("no non-null {unit} in the sample"));
        } else if recognisable(n.category) && tally.values >= MIN_VALUES_TO_CONTRADICT {
            evidence.push(format!(
                "but none of {} sampled {unit} looks like one",
                tally.values
            ));
            confidence *= CONTRADICTED;
        } else if tally.values < MIN_VALUES_TO_CONTRADICT {
            evidence.push(format!("only {} non-null {unit} sampled", tally.values));
        }
        candidates.push(Candidate {
            category: n.category,
            confidence,
            evidence,
        });
    }
    let best = candidates
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.confidence.total_cmp(&b.1.confidence))
        .map(|(i, _)| i)?;
    let primary = candidates.swap_remove(best);
    Level::of(round2(primary.confidence))?;

    let mut evidence = primary.evidence;
    for other in &candidates {
        // Only value evidence is worth repeating; a second name reading is noise.
        if by_category.contains_key(&other.category) {
            for line in &other.evidence {
                evidence.push(format!("also {line}"));
            }
        }
    }

    let whole: u32 = hits.iter().map(|h| h.whole).sum();
    let within: u32 = hits.iter().map(|h| h.within).sum();
    let from_values = by_category.contains_key(&primary.category);
    let mixed = by_category
        .iter()
        .filter(|(c, _)| **c != primary.category)
        .any(|(_, hs)| {
            let n: u32 = hs.iter().map(|h| h.whole).sum();
            n * 4 >= tally.values
        });
    let prefer_ipv6 = tally.matched(Detector::Ipv6) > tally.matched(Detector::Ipv4);
    let proposed = if from_values && within > whole && target.ty.kind != TypeKind::Text {
        // Inside a value that is not text (`hstore`): no pattern rule fits its type.
        evidence.push(format!(
            "inside a {} no pattern rule fits: the whole value is replaced",
            target.ty.name
        ));
        propose::fallback(target)
    } else if from_values && within > whole {
        // Free text: replace what was found, keep the prose.
        // What was found, and always the common shapes a sample can miss: the rule must hold
        // for every row, not only the sampled ones.
        let found: Vec<Detector> = hits
            .iter()
            .filter(|h| h.within > 0)
            .map(|h| h.detector)
            .chain(propose::FREE_TEXT_ALWAYS)
            .collect();
        evidence.push("free text may hold more (names): `lorem` replaces it all".to_string());
        propose::redact(&found)
    } else if from_values && mixed {
        // Emails and phones in one column: no single fake fits both.
        evidence.push("values of several kinds: a keyed hash keeps them distinct".to_string());
        propose::propose(Category::NationalId, target, false)
    } else {
        propose::propose(primary.category, target, prefer_ipv6)
    };
    Some(Judgement {
        category: primary.category,
        confidence: primary.confidence,
        evidence,
        proposed,
    })
}

/// One JSON path: its keys as the name, its leaves as the values.
fn judge_path(pt: &PathTally) -> Option<Judgement> {
    let kind = if pt.strings > 0 {
        TypeKind::Text
    } else if pt.numbers > 0 {
        TypeKind::Numeric
    } else if pt.bools > 0 {
        TypeKind::Bool
    } else {
        TypeKind::Text
    };
    // `$.contact.email` reads as `contact_email`; `$.phone.number` as `phone_number`. The
    // stronger of the last key alone and the last two keys wins.
    let (parent, last) = &pt.keys;
    let name = last.as_deref().and_then(|last| {
        let alone = classify_name(last, &kind);
        let joined = parent
            .as_deref()
            .and_then(|p| classify_name(&format!("{p}_{last}"), &kind));
        match (alone, joined) {
            (Some(a), Some(j)) => Some(if j.confidence > a.confidence { j } else { a }),
            (a, j) => a.or(j),
        }
    });
    // A JSON leaf is a nullable text value as far as a rule inside `json` is concerned.
    let leaf = ColumnType::simple("text", TypeKind::Text);
    let target = Target {
        ty: &leaf,
        not_null: false,
        unique: false,
    };
    judge_values(
        name.as_ref(),
        "key",
        &pt.tally,
        "values at this path",
        target,
    )
}

/// Findings as the text table `restage scan` prints.
pub fn render_table(findings: &[Finding]) -> String {
    let rows: Vec<[String; 4]> = findings
        .iter()
        .map(|f| {
            let mut column = format!("{}.{}", f.table, f.column);
            if let Some(path) = &f.path {
                let _ = write!(column, " {path}");
            }
            let confidence = format!("{} {:.2}", f.level.as_str(), f.confidence);
            let proposed = match &f.path {
                Some(_) => format!("json: {}", f.proposed.summary()),
                None => f.proposed.summary(),
            };
            let mut evidence = f.evidence.join("; ");
            if f.covered_by.is_some() {
                evidence = format!("covered by `*: keep`, but {evidence}");
            }
            [column, confidence, proposed, evidence]
        })
        .collect();
    let headers = ["COLUMN", "CONFIDENCE", "PROPOSED", "EVIDENCE"];
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
    };
    line(&mut out, headers);
    for row in &rows {
        line(&mut out, [&row[0], &row[1], &row[2], &row[3]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, kind: TypeKind) -> Column {
        Column {
            name: name.to_string(),
            ty: ColumnType::simple("t", kind),
            not_null: false,
            generated: false,
            binary_copy: None,
        }
    }

    fn tally(values: &[&str]) -> Tally {
        let mut t = Tally::default();
        for v in values {
            t.observe(v);
        }
        t
    }

    fn judge_one(col: &Column, sample: Option<&Sampled>, coverage: Coverage) -> Vec<Finding> {
        let table = QualifiedName::new("public", "t");
        judge(
            ColumnFacts {
                table: &table,
                column: col,
                unique: false,
                coverage,
            },
            sample,
        )
    }

    fn repeat(v: &str, n: usize) -> Vec<&str> {
        std::iter::repeat_n(v, n).collect()
    }

    #[test]
    fn innocent_name_with_emails_inside_text() {
        let col = column("notes", TypeKind::Text);
        let mut values = repeat("called, all fine", 28);
        values.extend(repeat("new address: jo@example.com", 12));
        let s = Sampled::Values(tally(&values));
        let f = judge_one(&col, Some(&s), Coverage::Uncovered);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].category, Category::Email);
        assert_eq!(f[0].level, Level::Medium);
        assert_eq!(f[0].proposed.transform, "regex_replace");
        assert_eq!(
            f[0].evidence[0],
            "12/40 sampled values contain email addresses"
        );
    }

    #[test]
    fn name_and_values_agree() {
        let col = column("email", TypeKind::Text);
        let s = Sampled::Values(tally(&repeat("a@example.com", 40)));
        let f = judge_one(&col, Some(&s), Coverage::Uncovered);
        assert_eq!(f[0].category, Category::Email);
        assert!(f[0].confidence >= 0.99, "{}", f[0].confidence);
        assert_eq!(
            f[0].evidence,
            [
                "name looks like an email address (`email`)",
                "40/40 sampled values are email addresses"
            ]
        );
        assert_eq!(f[0].proposed.transform, "email");
    }

    #[test]
    fn values_contradict_the_name() {
        let col = column("email", TypeKind::Text);
        let s = Sampled::Values(tally(&repeat("n/a", 40)));
        let f = judge_one(&col, Some(&s), Coverage::Uncovered);
        assert_eq!(f[0].level, Level::Medium, "{f:?}");
        assert!(f[0].evidence[1].starts_with("but none of 40"), "{f:?}");
    }

    #[test]
    fn innocent_columns_are_not_reported() {
        for (name, values) in [
            ("status", repeat("active", 40)),
            ("sku", repeat("SKU-00042", 40)),
            (
                "comment",
                repeat("Delivered on 2024-01-15, order 12345, total 1 234.50", 40),
            ),
        ] {
            let col = column(name, TypeKind::Text);
            let s = Sampled::Values(tally(&values));
            assert!(
                judge_one(&col, Some(&s), Coverage::Uncovered).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn card_like_order_numbers_are_not_cards() {
        let col = column("order_no", TypeKind::Text);
        let values: Vec<String> = (0..200u64)
            .map(|i| (4_000_000_000_000_000 + i * 37).to_string())
            .collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let s = Sampled::Values(tally(&refs));
        assert!(judge_one(&col, Some(&s), Coverage::Uncovered).is_empty());
    }

    #[test]
    fn wildcard_keep_reported_only_when_fairly_sure() {
        let col = column("note", TypeKind::Text);
        let emails = Sampled::Values(tally(&repeat("x@example.com", 40)));
        let f = judge_one(&col, Some(&emails), Coverage::WildcardKeep);
        assert_eq!(f[0].covered_by, Some("*: keep"));
        let name_only = column("name", TypeKind::Text);
        assert!(judge_one(&name_only, None, Coverage::WildcardKeep).is_empty());
        assert!(judge_one(&col, Some(&emails), Coverage::Covered).is_empty());
    }

    #[test]
    fn name_only_when_not_sampled() {
        let col = column("geburtsdatum", TypeKind::Date);
        let f = judge_one(&col, None, Coverage::Uncovered);
        assert_eq!(f[0].category, Category::BirthDate);
        assert_eq!(
            f[0].proposed.to_yaml_flow(),
            "{ transform: date_shift, days: 30 }"
        );
        assert_eq!(
            f[0].evidence,
            ["name looks like a birth date (`geburtsdatum`, de)"]
        );
    }

    #[test]
    fn json_paths_by_key_and_value() {
        let col = column("data", TypeKind::Jsonb);
        let mut j = JsonTally::default();
        for i in 0..20 {
            j.observe(&format!(
                r#"{{"contact": {{"email": "u{i}@example.com", "tel": "+33 6 12 34 56 {:02}"}}, "plan": "pro", "ref": "DE89370400440532013000", "memo": "ping x{i}@example.org"}}"#,
                i
            ));
        }
        let s = Sampled::Json(j);
        let f = judge_one(&col, Some(&s), Coverage::Uncovered);
        let paths: Vec<(&str, Category)> = f
            .iter()
            .map(|f| (f.path.as_deref().unwrap_or(""), f.category))
            .collect();
        assert_eq!(
            paths,
            [
                ("$.contact.email", Category::Email),
                ("$.contact.tel", Category::Phone),
                ("$.memo", Category::Email),
                ("$.ref", Category::Iban),
            ]
        );
        let memo = f.iter().find(|f| f.path.as_deref() == Some("$.memo"));
        assert_eq!(memo.map(|f| f.proposed.transform), Some("regex_replace"));
        assert!(f[0].evidence[0].starts_with("key looks like an email address"));
    }

    #[test]
    fn mixed_kinds_get_a_hash() {
        let col = column("contact", TypeKind::Text);
        let mut values = repeat("a@example.com", 20);
        values.extend(repeat("+33 6 12 34 56 78", 20));
        let s = Sampled::Values(tally(&values));
        let f = judge_one(&col, Some(&s), Coverage::Uncovered);
        assert_eq!(f[0].proposed.transform, "hash");
        assert!(
            f[0].evidence.iter().any(|e| e.starts_with("also 20/40")),
            "{f:?}"
        );
    }

    #[test]
    fn table_has_no_values() {
        let col = column("notes", TypeKind::Text);
        let s = Sampled::Values(tally(&repeat("mail me: secret.person@example.com", 3)));
        let f = judge_one(&col, Some(&s), Coverage::Uncovered);
        let table = render_table(&f);
        assert!(table.starts_with("COLUMN"), "{table}");
        assert!(table.contains("public.t.notes"), "{table}");
        assert!(!table.contains("secret.person"), "{table}");
        let json = serde_json::to_string(&f).expect("json");
        assert!(!json.contains("secret.person"), "{json}");
        assert!(json.contains("\"table\":\"public.t\""), "{json}");
    }
}
