//! Canary analysis from a Prometheus text-format endpoint: counters and a latency histogram,
//! scraped at the start of a step and during its window, compared as deltas.
//!
//! Error rate = Δ(errors) / Δ(requests), with both given as selectors in Prometheus syntax
//! (`http_requests_total{code=~"5.."}`). p99 latency comes from the Δ of the histogram's
//! cumulative `_bucket{le=…}` series, interpolated linearly inside the bucket that holds the
//! 99th percentile, as PromQL's `histogram_quantile` does. A counter that went down between
//! two scrapes was reset (the process restarted): its new value is the delta.
//!
//! Why our own parser (issue 15 asked for a library or a measured reason): the crate in use
//! for this, `prometheus-parse` 0.2.5 (the latest, and already a dev-dependency for the
//! health tests), was run on the lines a canary must read right (2026-12-01, a probe program
//! over its `Scrape::parse`): a label value with an escaped quote kept the backslash
//! (`/b\"q`), one with a comma was cut at the comma (`a,b` became `a`: a different series),
//! one with `=` lost all its labels, one with `}` dropped the whole sample, `a="1", b="2"`
//! gave a label named ` b`, a recording-rule name with a colon (`job:rate5m`) was dropped, and
//! a malformed value or line was skipped without an error. Each of these silently changes an
//! error rate a deploy is gated on. `openmetrics-parser` (pest-based, its API still changing,
//! no tagged releases) was not taken for the same decision. The parser below is ~90 lines:
//! label values unescaped (`\\`, `\"`, `\n`), any character inside quotes, NaN and ±Inf, an
//! optional timestamp (ignored: the scrape time is ours), `#` lines skipped, and a malformed
//! line is an error naming its line number. The tests below pin each case above.

use std::collections::BTreeMap;
use std::str::FromStr;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the text exposition format. Comments and blank lines are skipped; a malformed
/// line is an error naming its line number.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_line(line).map_err(|e| format!("metrics line {}: {e}", i + 1))?);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| format!("no value in `{line}`"))?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err(format!("no metric name in `{line}`"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let value_text = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("no value in `{line}`"))?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value_text)?,
    })
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse()
            .map_err(|_| format!("`{text}` is not a number")),
    }
}

/// Label names and values of one series.
type Labels = Vec<(String, String)>;

/// Parses `a="x",b="y"}` (after the `{`); returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("a label without `=`")?;
        let name = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".to_string()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".to_string()),
            }
        };
        labels.push((name, value));
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        }
    }
}

#[derive(Debug, Clone)]
enum MatchOp {
    Eq(String),
    Ne(String),
    Re(regex::Regex),
    NotRe(regex::Regex),
}

/// A series selector as PromQL writes it: `name{label="v", other=~"re", x!="y"}`.
#[derive(Debug, Clone)]
pub struct Selector {
    pub name: String,
    matchers: Vec<(String, MatchOp)>,
    text: String,
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Selector, String> {
        let text = text.trim();
        let (name, rest) = match text.find('{') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!(
                "`{text}` is not a metric selector (example: http_requests_total{{code=~\"5..\"}})"
            ));
        }
        let mut matchers = Vec::new();
        if let Some(mut s) = rest {
            loop {
                s = s.trim_start();
                if let Some(after) = s.strip_prefix('}') {
                    if !after.trim().is_empty() {
                        return Err(format!(
                            "unexpected `{}` after `}}` in `{text}`",
                            after.trim()
                        ));
                    }
                    break;
                }
                let op_at = s
                    .find(['=', '!'])
                    .ok_or_else(|| format!("a matcher without an operator in `{text}`"))?;
                let label = s[..op_at].trim().to_string();
                let after_label = &s[op_at..];
                let (op, after_op) = ["=~", "!~", "!=", "="]
                    .iter()
                    .find_map(|op| after_label.strip_prefix(op).map(|r| (*op, r)))
                    .ok_or_else(|| format!("unknown operator in `{text}` (use =, !=, =~, !~)"))?;
                let after_op = after_op.trim_start();
                let quoted = after_op.strip_prefix('"').ok_or_else(|| {
                    format!("the value of `{label}` must be in double quotes in `{text}`")
                })?;
                let close = quoted
                    .find('"')
                    .ok_or_else(|| format!("unterminated value of `{label}` in `{text}`"))?;
                let value = &quoted[..close];
                let anchored = || {
                    regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                        format!("`{value}` in `{text}` is not a valid regular expression: {e}")
                    })
                };
                let op = match op {
                    "=" => MatchOp::Eq(value.to_string()),
                    "!=" => MatchOp::Ne(value.to_string()),
                    "=~" => MatchOp::Re(anchored()?),
                    _ => MatchOp::NotRe(anchored()?),
                };
                matchers.push((label, op));
                s = quoted[close + 1..].trim_start();
                if let Some(r) = s.strip_prefix(',') {
                    s = r;
                } else if !s.starts_with('}') {
                    return Err(format!("expected `,` or `}}` in `{text}`"));
                }
            }
        }
        Ok(Selector {
            name: name.to_string(),
            matchers,
            text: text.to_string(),
        })
    }
}

impl Selector {
    /// Whether the sample is a series of `name` whose labels match (a missing label is "").
    fn matches(&self, name: &str, labels: &[(String, String)]) -> bool {
        name == self.name
            && self.matchers.iter().all(|(label, op)| {
                let value = labels
                    .iter()
                    .find(|(n, _)| n == label)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                match op {
                    MatchOp::Eq(v) => value == v,
                    MatchOp::Ne(v) => value != v,
                    MatchOp::Re(re) => re.is_match(value),
                    MatchOp::NotRe(re) => !re.is_match(value),
                }
            })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What the analysis reads from a scrape.
#[derive(Debug, Clone)]
pub struct Queries {
    pub requests: Selector,
    pub errors: Selector,
    /// The histogram's base name with matchers; its `_bucket` series are read.
    pub latency: Selector,
}

/// The values of the series the queries select, by series (labels), from one scrape or a
/// sum of scrapes of several instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    requests: BTreeMap<String, f64>,
    errors: BTreeMap<String, f64>,
    /// Series key without `le` → le → cumulative count.
    buckets: BTreeMap<String, Vec<(f64, f64)>>,
}

fn series_key(source: &str, labels: &[(String, String)], skip: &str) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .filter(|(n, _)| n != skip)
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    parts.sort();
    format!("{source}|{}", parts.join(","))
}

impl Snapshot {
    /// Extracts the queried series from `samples`; `source` keeps instances apart.
    pub fn extract(samples: &[Sample], queries: &Queries, source: &str) -> Snapshot {
        let mut snap = Snapshot::default();
        let bucket_name = format!("{}_bucket", queries.latency.name);
        for s in samples {
            if !s.value.is_finite() {
                continue;
            }
            if queries.requests.matches(&s.name, &s.labels) {
                snap.requests
                    .insert(series_key(source, &s.labels, ""), s.value);
            }
            if queries.errors.matches(&s.name, &s.labels) {
                snap.errors
                    .insert(series_key(source, &s.labels, ""), s.value);
            }
            if s.name == bucket_name && queries.latency.matches(&queries.latency.name, &s.labels) {
                let le = s
                    .labels
                    .iter()
                    .find(|(n, _)| n == "le")
                    .and_then(|(_, v)| parse_value(v).ok());
                if let Some(le) = le {
                    snap.buckets
                        .entry(series_key(source, &s.labels, "le"))
                        .or_default()
                        .push((le, s.value));
                }
            }
        }
        snap
    }

    /// Adds another instance's snapshot.
    pub fn merge(&mut self, other: Snapshot) {
        self.requests.extend(other.requests);
        self.errors.extend(other.errors);
        self.buckets.extend(other.buckets);
    }
}

/// What happened between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub requests: f64,
    pub errors: f64,
    /// Summed over series: (upper bound, cumulative count), sorted by bound.
    pub buckets: Vec<(f64, f64)>,
}

/// Increase of a counter, with resets counted as a restart from 0.
fn increase(before: Option<f64>, after: f64) -> f64 {
    match before {
        Some(b) if after >= b => after - b,
        _ => after,
    }
}

/// The change from `start` to `now`. A series absent at the start counts from 0.
pub fn window(start: &Snapshot, now: &Snapshot) -> Window {
    let sum = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| -> f64 {
        b.iter().map(|(k, v)| increase(a.get(k).copied(), *v)).sum()
    };
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for (key, buckets) in &now.buckets {
        let before = start.buckets.get(key);
        // A reset shows in the +Inf (total) count; then every bucket restarts from 0.
        let total_now = buckets.iter().find(|(le, _)| le.is_infinite()).map(|b| b.1);
        let total_before =
            before.and_then(|b| b.iter().find(|(le, _)| le.is_infinite()).map(|x| x.1));
        let reset = matches!((total_before, total_now), (Some(b), Some(n)) if n < b);
        for (le, count) in buckets {
            let prev = if reset {
                None
            } else {
                before.and_then(|b| b.iter().find(|(l, _)| l == le).map(|x| x.1))
            };
            let entry = by_le.entry(order_key(*le)).or_insert((*le, 0.0));
            entry.1 += increase(prev, *count);
        }
    }
    Window {
        requests: sum(&start.requests, &now.requests),
        errors: sum(&start.errors, &now.errors),
        buckets: by_le.into_values().collect(),
    }
}

/// A sort key for bucket bounds that keeps +Inf last.
fn order_key(le: f64) -> u64 {
    if le.is_infinite() {
        u64::MAX
    } else {
        // Non-negative finite bounds keep their order as bits.
        le.max(0.0).to_bits()
    }
}

impl Window {
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }

    /// The `q` quantile of the histogram, in the histogram's unit.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(q, &self.buckets)
    }
}

/// `histogram_quantile`: `buckets` are (upper bound, cumulative count), sorted, ending with
/// +Inf. Linear interpolation inside the bucket where the rank falls; the lowest bucket
/// starts at 0; a rank in the +Inf bucket gives the highest finite bound.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last().filter(|(le, _)| le.is_infinite())?.1;
    if total <= 0.0 || buckets.len() < 2 {
        return None;
    }
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = count - lower_count;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(lower_bound + (le - lower_bound) * (rank - lower_count) / in_bucket);
        }
        lower_bound = le;
        lower_count = count;
    }
    Some(lower_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/a"} 90
http_requests_total{code="503",path="/a"} 10 1712000000000
http_requests_total{code="500", path="/b\"q"} 5
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 50
http_request_duration_seconds_bucket{le="0.5"} 90
http_request_duration_seconds_bucket{le="1"} 100
http_request_duration_seconds_bucket{le="+Inf"} 105
http_request_duration_seconds_sum 30
http_request_duration_seconds_count 105
"#;

    fn queries() -> Queries {
        Queries {
            requests: "http_requests_total".parse().unwrap(),
            errors: r#"http_requests_total{code=~"5.."}"#.parse().unwrap(),
            latency: "http_request_duration_seconds".parse().unwrap(),
        }
    }

    #[test]
    fn parses_exposition_text() {
        let samples = parse(TEXT).unwrap();
        assert_eq!(samples.len(), 9);
        assert_eq!(
            samples[2].labels[1],
            ("path".to_string(), "/b\"q".to_string())
        );
        assert_eq!(samples[6].labels[0].1, "+Inf");
        assert_eq!(samples[6].value, 105.0);
        assert!(
            parse("x{a=\"1\"} notanumber")
                .unwrap_err()
                .starts_with("metrics line 1:")
        );
    }

    /// The lines `prometheus-parse` 0.2.5 gets wrong (see the module header), and their
    /// neighbours: each parses to exactly its series, or is an error naming the line.
    #[test]
    fn parses_what_a_library_got_wrong() {
        let one = |line: &str| {
            let samples = parse(line).unwrap();
            assert_eq!(samples.len(), 1, "{line}");
            samples.into_iter().next().unwrap()
        };
        let labels = |line: &str| one(line).labels;
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(labels(r#"x{p="/b\"q"} 1"#), [pair("p", "/b\"q")]);
        assert_eq!(labels(r#"x{p="C:\\DIR\\F"} 1"#), [pair("p", r"C:\DIR\F")]);
        assert_eq!(labels(r#"x{m="a\nb"} 1"#), [pair("m", "a\nb")]);
        assert_eq!(labels(r#"x{p="a,b"} 1"#), [pair("p", "a,b")]);
        assert_eq!(labels(r#"x{q="a=b"} 1"#), [pair("q", "a=b")]);
        assert_eq!(labels(r#"x{p="}"} 1"#), [pair("p", "}")]);
        assert_eq!(labels(r#"x{p="{}"} 1"#), [pair("p", "{}")]);
        assert_eq!(
            labels(r#"x{a="1", b="2"} 1"#),
            [pair("a", "1"), pair("b", "2")]
        );
        assert_eq!(labels(r#"x{a="1",} 1"#), [pair("a", "1")]);
        assert_eq!(labels("x{} 1"), []);
        assert_eq!(labels(r#"x{a=""} 1"#), [pair("a", "")]);
        let s = one(r#"job:http_requests:rate5m{job="api"} 2.5"#);
        assert_eq!(
            (s.name.as_str(), s.value),
            ("job:http_requests:rate5m", 2.5)
        );
        // Values: floats, exponents, NaN, ±Inf; a timestamp after the value is ignored.
        assert_eq!(one("x 1.5e3").value, 1500.0);
        assert_eq!(one("x -0.25").value, -0.25);
        assert!(one("x NaN").value.is_nan());
        assert_eq!(one("x +Inf").value, f64::INFINITY);
        assert_eq!(one("x -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one(r#"x{a="1"} 5 1712000000000"#).value, 5.0);
        assert_eq!(one("x\t7").value, 7.0);
        // Comments, HELP and TYPE lines, blank lines.
        let text = "# HELP x Help with \"quotes\" and {braces}.\n# TYPE x counter\n\n# free comment\nx 3\n";
        assert_eq!(parse(text).unwrap().len(), 1);
        // Malformed lines are errors with their line number, never skipped.
        for (text, line) in [
            ("x{a=\"1\"} notanumber", 1),
            ("ok 1\nx{a=\"1\"}", 2),
            ("ok 1\n\nx{a=\"1} 1", 3),
            ("x{a} 1", 1),
            ("x{a=1} 1", 1),
            ("x", 1),
            ("{a=\"1\"} 1", 1),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.starts_with(&format!("metrics line {line}:")),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn selectors() {
        let s: Selector = r#"http_requests_total{code=~"5..", path!="/b"}"#.parse().unwrap();
        let l = |c: &str, p: &str| {
            vec![
                ("code".to_string(), c.to_string()),
                ("path".to_string(), p.to_string()),
            ]
        };
        assert!(s.matches("http_requests_total", &l("503", "/a")));
        assert!(!s.matches("http_requests_total", &l("503", "/b")));
        assert!(!s.matches("http_requests_total", &l("200", "/a")));
        // Regexes are anchored, as in PromQL.
        assert!(!s.matches("http_requests_total", &l("5030", "/a")));
        assert!("bad name{".parse::<Selector>().is_err());
        assert!(r#"x{a=~"("}"#.parse::<Selector>().is_err());
        assert!(r#"x{a=1}"#.parse::<Selector>().is_err());
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        let b = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        // rank 99 is the 9th of 10 in (0.5, 1]: 0.5 + 0.5 * 9/10.
        assert!((quantile(0.99, &b).unwrap() - 0.95).abs() < 1e-9);
        // rank 50 falls at the top of the first bucket.
        assert!((quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-9);
        // A rank in +Inf gives the highest finite bound.
        let b = [(0.1, 1.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.99, &b), Some(0.1));
        assert_eq!(quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn windows_are_deltas_with_resets() {
        let q = queries();
        let start = Snapshot::extract(&parse(TEXT).unwrap(), &q, "a");
        let later_text = TEXT
            .replace(
                "code=\"200\",path=\"/a\"} 90",
                "code=\"200\",path=\"/a\"} 180",
            )
            .replace("\"503\",path=\"/a\"} 10", "\"503\",path=\"/a\"} 30")
            .replace("le=\"1\"} 100", "le=\"1\"} 200")
            .replace("le=\"+Inf\"} 105", "le=\"+Inf\"} 205");
        let now = Snapshot::extract(&parse(&later_text).unwrap(), &q, "a");
        let w = window(&start, &now);
        assert_eq!(w.requests, 90.0 + 20.0);
        assert_eq!(w.errors, 20.0);
        assert!((w.error_rate().unwrap() - 20.0 / 110.0).abs() < 1e-9);
        // 100 new observations, all in (0.5, 1].
        assert_eq!(w.buckets.last().unwrap().1, 100.0);
        assert!((w.quantile(0.99).unwrap() - 0.995).abs() < 1e-9);
        // A reset: the counter went down, the new value is the increase.
        let reset = Snapshot::extract(
            &parse("http_requests_total{code=\"200\",path=\"/a\"} 7").unwrap(),
            &q,
            "a",
        );
        assert_eq!(window(&start, &reset).requests, 7.0);
    }
}
