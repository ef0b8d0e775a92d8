//! Reading YAML files (restage.yaml, rules) into typed structs with errors that point at the
//! file, line and column at fault.
//!
//! serde_yaml gives positions for syntax and type errors. Errors found after deserializing
//! (a rule for a column that does not exist, an unset `${VAR}`) need the position of a key
//! too, so [`KeyIndex`] records where every mapping key starts, by its path from the root.
//!
//! Limits (issue 11): a file is read only up to [`MAX_FILE_BYTES`], and its nesting is
//! measured by a linear scan ([`check_nesting`]) before any parser sees it — both YAML parsers
//! restage links take time quadratic in the nesting depth, so a 100,000-deep document took
//! half a minute to refuse. Lists of problems print the first [`MAX_PROBLEMS_SHOWN`] and
//! count the rest ([`list_problems`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A place in a YAML file, printed `file:line:column` (both 1-based) like compilers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// An error in a YAML file: where, and what.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {message}")]
pub struct YamlError {
    pub location: Location,
    pub message: String,
}

/// Deserializes `text` (the content of `file`) into `T`, turning serde_yaml's error into a
/// [`YamlError`] with a did-you-mean for unknown keys.
pub fn from_str<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, YamlError> {
    check_nesting(text, file)?;
    // An empty file means "all defaults", not an error.
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_yaml::from_str(text).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let message = describe_serde_error(&err);
        // serde points a duplicate key at the start of its mapping; point at the duplicate.
        let duplicate = parse_duplicate_field(&message)
            .and_then(|(parent, field)| KeyIndex::parse(text, file).duplicate(parent, field));
        YamlError {
            location: duplicate.unwrap_or(Location {
                file: file.to_path_buf(),
                line,
                column,
            }),
            message,
        }
    })
}

/// serde_yaml's Display appends " at line L column C"; we print the position first instead,
/// so the suffix is dropped, and an unknown key gets the closest expected one as a suggestion.
fn describe_serde_error(err: &serde_yaml::Error) -> String {
    let full = err.to_string();
    // The position printed first is the error's own; a syntax error can carry a second one,
    // where the construct it was scanning started ("while scanning a quoted scalar at line 2
    // column 8"), which is kept.
    let own = err
        .location()
        .map(|l| format!(" at line {} column {}", l.line(), l.column()));
    let message = match own
        .as_deref()
        .and_then(|own| full.find(own).map(|p| (p, own.len())))
    {
        Some((pos, len)) => format!("{}{}", &full[..pos], &full[pos + len..]),
        None => match full.rfind(" at line ") {
            Some(pos) if full[pos..].contains(" column ") => full[..pos].to_string(),
            _ => full,
        },
    };
    match parse_unknown_field(&message) {
        Some((path, field, expected)) => {
            let mut out = String::new();
            if !path.is_empty() {
                out.push_str(path);
                out.push_str(": ");
            }
            out.push_str(&format!("unknown key `{field}`"));
            let candidates: Vec<&str> = expected.iter().map(String::as_str).collect();
            match did_you_mean(field, &candidates) {
                Some(best) => out.push_str(&format!(", did you mean `{best}`?")),
                None if !candidates.is_empty() => {
                    out.push_str(&format!(", expected one of: {}", candidates.join(", ")))
                }
                None => {}
            }
            out
        }
        None => message,
    }
}

/// Picks apart serde's `unknown field` message: `[path: ]unknown field `x`, expected ...`.
/// Returns (path, field, expected fields). Covered by a unit test so a format change is caught.
fn parse_unknown_field(message: &str) -> Option<(&str, &str, Vec<String>)> {
    let idx = message.find("unknown field `")?;
    let path = message[..idx].trim_end().trim_end_matches(':');
    let rest = &message[idx + "unknown field `".len()..];
    let end = rest.find('`')?;
    let field = &rest[..end];
    let expected = rest[end + 1..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((path, field, expected))
}

/// Picks apart serde's `[path: ]duplicate field `x`` message: (path, field).
fn parse_duplicate_field(message: &str) -> Option<(&str, &str)> {
    let idx = message.find("duplicate field `")?;
    let path = message[..idx].trim_end().trim_end_matches(':');
    let rest = &message[idx + "duplicate field `".len()..];
    let field = &rest[..rest.find('`')?];
    Some((path, field))
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The largest YAML file restage reads (restage.yaml, a rules file). Real ones are a few
/// kilobytes; a generated rules file for thousands of tables is a few megabytes.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The deepest nesting of mappings and sequences restage reads. Its own formats need five or
/// six levels (a `json` rule's `paths` a few more).
pub const MAX_DEPTH: usize = 64;

/// How many problems a list of them prints before it counts the rest.
pub const MAX_PROBLEMS_SHOWN: usize = 50;

/// Reads a YAML file of at most [`MAX_FILE_BYTES`]; a larger one is an error of kind
/// `InvalidData` saying its size, read no further than the limit.
pub fn read_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the file is {}, over the limit of {} MiB for a YAML file restage reads",
                mib(size.max(MAX_FILE_BYTES + 1)),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    Ok(text)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The problems, one a line: the first [`MAX_PROBLEMS_SHOWN`], then how many more there are.
pub fn list_problems<S: AsRef<str>>(problems: &[S]) -> String {
    let mut out: Vec<&str> = problems
        .iter()
        .take(MAX_PROBLEMS_SHOWN)
        .map(AsRef::as_ref)
        .collect();
    let more = more_problems(problems.len());
    if let Some(more) = &more {
        out.push(more);
    }
    out.join("\n")
}

/// The line that counts the problems [`list_problems`] leaves out, when it leaves some out.
pub fn more_problems(total: usize) -> Option<String> {
    (total > MAX_PROBLEMS_SHOWN).then(|| {
        let more = total - MAX_PROBLEMS_SHOWN;
        format!(
            "... and {} more problem{} (the first {MAX_PROBLEMS_SHOWN} are shown)",
            thousands(more),
            if more == 1 { "" } else { "s" }
        )
    })
}

/// 899950 → `899,950`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Refuses a document nested deeper than [`MAX_DEPTH`], pointing at where it goes too deep.
///
/// One pass over the text, no parser: block collections are counted by their indentation
/// (each `- ` of a compact sequence is a level of its own), flow collections by their
/// brackets, outside quoted scalars, comments and block scalars. In block context a bracket
/// opens a collection only where a value starts (so `pattern: \d{3}` is a plain scalar), as
/// in YAML itself. The count can be one above the true depth on a line whose value is a
/// scalar; for a limit of 64 that does not matter.
pub fn check_nesting(text: &str, file: &Path) -> Result<(), YamlError> {
    let too_deep = |line: usize, column: usize| YamlError {
        location: Location {
            file: file.to_path_buf(),
            line,
            column,
        },
        message: format!(
            "nested deeper than {MAX_DEPTH} levels; restage's files need only a few (is this the right file?)"
        ),
    };
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    // The indentation of the line that opened a block scalar (`|`, `>`): more indented lines
    // (and empty ones) are its content.
    let mut block_scalar: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let chars: Vec<char> = line.chars().collect();
        let indent = chars.iter().take_while(|c| **c == ' ').count();
        let blank = indent == chars.len();
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut pos = 0;
        let mut at_value = true;
        if quote.is_none() && flow == 0 {
            if blank || chars[indent] == '#' {
                continue;
            }
            if indent == 0 && (line.starts_with("---") || line.starts_with("...")) {
                indents.clear();
                pos = 3;
            } else if indent == 0 && line.starts_with('%') {
                continue;
            } else {
                while indents.last().is_some_and(|&i| i >= indent) {
                    indents.pop();
                }
                pos = indent;
                // Compact sequences: every `- ` (or `? `) opens a level at its column.
                while pos < chars.len()
                    && matches!(chars[pos], '-' | '?')
                    && chars.get(pos + 1).is_none_or(|c| *c == ' ')
                {
                    indents.push(pos);
                    if indents.len() > MAX_DEPTH {
                        return Err(too_deep(line_no, pos + 1));
                    }
                    pos += 1;
                    while chars.get(pos) == Some(&' ') {
                        pos += 1;
                    }
                }
                if pos < chars.len() && chars[pos] != '#' {
                    indents.push(pos);
                    if indents.len() > MAX_DEPTH {
                        return Err(too_deep(line_no, pos + 1));
                    }
                }
            }
        }
        let mut prev = ' ';
        while pos < chars.len() {
            let c = chars[pos];
            pos += 1;
            if let Some(q) = quote {
                if q == '"' && c == '\\' {
                    pos += 1;
                } else if c == q {
                    if q == '\'' && chars.get(pos) == Some(&'\'') {
                        pos += 1;
                    } else {
                        quote = None;
                        at_value = false;
                    }
                }
                prev = c;
                continue;
            }
            match c {
                '#' if prev == ' ' || prev == '\t' => break,
                ' ' | '\t' => {}
                '\'' | '"' if at_value => quote = Some(c),
                '[' | '{' if at_value || flow > 0 => {
                    flow += 1;
                    if indents.len() + flow > MAX_DEPTH {
                        return Err(too_deep(line_no, pos));
                    }
                    at_value = true;
                }
                ']' | '}' if flow > 0 => {
                    flow -= 1;
                    at_value = false;
                }
                ',' if flow > 0 => at_value = true,
                ':' if flow > 0 || chars.get(pos).is_none_or(|n| *n == ' ' || *n == '\t') => {
                    at_value = true
                }
                '|' | '>' if at_value && flow == 0 => {
                    block_scalar = Some(indent);
                    break;
                }
                // Anchors and tags come before a value, which may still be a collection.
                '&' | '!' if at_value => {
                    while chars.get(pos).is_some_and(|c| *c != ' ') {
                        pos += 1;
                    }
                }
                _ => at_value = false,
            }
            prev = c;
        }
    }
    Ok(())
}

/// Joins the keys of a path in [`KeyIndex`] (YAML keys do not hold NUL).
const PATH_SEPARATOR: &str = "\u{0}";

/// Where each mapping key of a YAML document starts, by its path of keys from the root.
/// Sequence items are addressed by their index as a decimal string.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    file: PathBuf,
    /// By the path's keys joined with [`PATH_SEPARATOR`]: one string per key, not a vector
    /// of them, so a rules file for thousands of tables indexes in a fraction of the memory.
    positions: HashMap<String, (usize, usize)>,
    /// Keys written twice in one mapping: the path and where the second one is.
    duplicates: Vec<(Vec<String>, (usize, usize))>,
}

impl KeyIndex {
    /// Builds the index. A document that does not parse gives an empty index: the typed
    /// deserialization reports that error with its own position.
    pub fn parse(text: &str, file: &Path) -> KeyIndex {
        let mut builder = IndexBuilder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut builder, false);
        KeyIndex {
            file: file.to_path_buf(),
            positions: builder.positions,
            duplicates: builder.duplicates,
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The location of the key at `path`, or of its nearest ancestor that exists, or the
    /// start of the file.
    pub fn locate(&self, path: &[&str]) -> Location {
        for len in (1..=path.len()).rev() {
            if let Some(&(line, column)) = self.positions.get(&path[..len].join(PATH_SEPARATOR)) {
                return Location {
                    file: self.file.clone(),
                    line,
                    column,
                };
            }
        }
        Location {
            file: self.file.clone(),
            line: 1,
            column: 1,
        }
    }

    /// Where a key written twice is written the second time: `field` in the mapping at
    /// `parent` (serde's path, `target` or `cache.warm[0]`).
    pub fn duplicate(&self, parent: &str, field: &str) -> Option<Location> {
        let parent: Vec<String> = parent
            .replace('[', ".")
            .replace(']', "")
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        self.duplicates
            .iter()
            .find(|(path, _)| {
                path.last().is_some_and(|last| last == field)
                    && path[..path.len() - 1] == parent[..]
            })
            .map(|(_, (line, column))| Location {
                file: self.file.clone(),
                line: *line,
                column: *column,
            })
    }

    /// The keys of the mapping at `path`, in no particular order.
    pub fn children(&self, path: &[&str]) -> Vec<String> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{}{PATH_SEPARATOR}", path.join(PATH_SEPARATOR))
        };
        self.positions
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains(PATH_SEPARATOR))
            .map(str::to_string)
            .collect()
    }
}

#[derive(Default)]
struct IndexBuilder {
    positions: HashMap<String, (usize, usize)>,
    duplicates: Vec<(Vec<String>, (usize, usize))>,
    /// One frame per open collection.
    stack: Vec<Frame>,
    /// The path of keys to the collection currently open.
    path: Vec<String>,
}

enum Frame {
    /// A mapping; `expect_key` alternates between key and value.
    Mapping { expect_key: bool },
    /// A sequence and the index of its next item.
    Sequence { next: usize },
}

impl IndexBuilder {
    /// Called before a value (scalar or collection start) is consumed: in a sequence, the
    /// value's path segment is its index.
    fn enter_value(&mut self) -> bool {
        match self.stack.last_mut() {
            Some(Frame::Sequence { next }) => {
                self.path.push(next.to_string());
                *next += 1;
                true
            }
            _ => false,
        }
    }

    fn value_done(&mut self, pushed_seq_index: bool) {
        if pushed_seq_index {
            self.path.pop();
        }
        if let Some(Frame::Mapping { expect_key }) = self.stack.last_mut()
            && !*expect_key
        {
            // The value of a key is done: drop the key from the path.
            self.path.pop();
            *expect_key = true;
        }
    }
}

impl MarkedEventReceiver for IndexBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping { expect_key }) = self.stack.last_mut()
                    && *expect_key
                {
                    *expect_key = false;
                    self.path.push(value);
                    let at = (mark.line(), mark.col() + 1);
                    if self
                        .positions
                        .insert(self.path.join(PATH_SEPARATOR), at)
                        .is_some()
                    {
                        self.duplicates.push((self.path.clone(), at));
                    }
                    return;
                }
                let pushed = self.enter_value();
                self.value_done(pushed);
            }
            Event::Alias(_) => {
                let pushed = self.enter_value();
                self.value_done(pushed);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A collection used as a key is not something our formats have; treat it as a value.
                let pushed = self.enter_value();
                // Remember whether we pushed a sequence index, via a marker frame order:
                // we store it by pushing the frame after the index.
                if pushed {
                    self.stack.push(Frame::Sequence { next: usize::MAX });
                }
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Mapping { expect_key: true },
                    _ => Frame::Sequence { next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                // A sentinel frame means this collection was a sequence item.
                let pushed = matches!(
                    self.stack.last(),
                    Some(Frame::Sequence { next }) if *next == usize::MAX
                );
                if pushed {
                    self.stack.pop();
                }
                self.value_done(pushed);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        url: String,
        database: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        source: Inner,
        jobs: Option<u32>,
    }

    #[test]
    fn unknown_key_has_position_and_suggestion() {
        let text = "source:\n  urll: x\n";
        let err = from_str::<Outer>(text, Path::new("r.yaml")).unwrap_err();
        assert_eq!(err.location.line, 2);
        assert_eq!(err.location.column, 3);
        assert_eq!(
            err.to_string(),
            "r.yaml:2:3: source: unknown key `urll`, did you mean `url`?"
        );
    }

    #[test]
    fn wrong_type_has_position() {
        let text = "source:\n  url: x\njobs: many\n";
        let err = from_str::<Outer>(text, Path::new("r.yaml")).unwrap_err();
        assert_eq!(err.location.line, 3);
        assert!(err.message.contains("jobs"), "{}", err.message);
        assert!(err.message.contains("invalid type"), "{}", err.message);
    }

    #[test]
    fn malformed_yaml_has_position() {
        let text = "source:\n  url: [unclosed\n";
        let err = from_str::<Outer>(text, Path::new("r.yaml")).unwrap_err();
        assert!(err.location.line >= 2, "{err}");
    }

    #[test]
    fn key_index_locates_nested_keys() {
        let text = "tables:\n  public.users:\n    email: { transform: email }\n    name: name\n  other:\n    - a: 1\n    - b: 2\n";
        let index = KeyIndex::parse(text, Path::new("x.yaml"));
        let loc = index.locate(&["tables", "public.users", "name"]);
        assert_eq!((loc.line, loc.column), (4, 5));
        let loc = index.locate(&["tables", "public.users", "email", "transform"]);
        assert_eq!((loc.line, loc.column), (3, 14));
        let loc = index.locate(&["tables", "other", "1", "b"]);
        assert_eq!((loc.line, loc.column), (7, 7));
        // Missing key falls back to the nearest ancestor.
        let loc = index.locate(&["tables", "public.users", "missing"]);
        assert_eq!((loc.line, loc.column), (2, 3));
        let mut cols = index.children(&["tables", "public.users"]);
        cols.sort();
        assert_eq!(cols, vec!["email", "name"]);
    }

    #[test]
    fn duplicate_key_points_at_the_second_one() {
        let err =
            from_str::<Outer>("source:\n  url: x\n  url: y\n", Path::new("r.yaml")).unwrap_err();
        assert_eq!(err.to_string(), "r.yaml:3:3: source: duplicate field `url`");
    }

    #[test]
    fn syntax_error_keeps_where_the_construct_started() {
        let err = from_str::<Outer>("source:\n  url: \"open\njobs: 1\n", Path::new("r.yaml"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.yaml:4:1: found unexpected end of stream, while scanning a quoted scalar at line 2 column 8"
        );
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(did_you_mean("sourc", &["source", "target"]), Some("source"));
        assert_eq!(did_you_mean("zzz", &["source", "target"]), None);
        assert_eq!(did_you_mean("emial", &["email", "hash"]), Some("email"));
    }

    /// Issue 11: nesting past [`MAX_DEPTH`] is refused by one linear pass, at the line and
    /// column where it goes too deep, before a parser (quadratic in the depth) sees it.
    #[test]
    fn deep_nesting_is_refused_quickly_where_it_goes_too_deep() {
        let file = Path::new("r.yaml");
        let started = std::time::Instant::now();
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let text = format!(
                "tables: {}{}\n",
                open.repeat(100_000),
                close.repeat(100_000)
            );
            let err = check_nesting(&text, file).unwrap_err();
            assert_eq!(err.location.line, 1, "{err}");
            assert!(
                err.message.starts_with("nested deeper than 64 levels"),
                "{err}"
            );
            assert!(from_str::<serde_yaml::Value>(&text, file).is_err());
        }
        let block: String = (0..1000)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let err = check_nesting(&block, file).unwrap_err();
        assert_eq!((err.location.line, err.location.column), (65, 65), "{err}");
        let compact = format!("{}x\n", "- ".repeat(100));
        assert_eq!(
            check_nesting(&compact, file).unwrap_err().location.column,
            129
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn nesting_at_the_limit_and_brackets_that_open_nothing_are_fine() {
        let file = Path::new("r.yaml");
        // 63 block mappings, the last holding a flow sequence: 64 levels.
        let mut text: String = (0..62)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        text.push_str(&format!("{}last: [1]\n", " ".repeat(62)));
        check_nesting(&text, file).unwrap();
        from_str::<serde_yaml::Value>(&text, file).unwrap();
        text.push_str(&format!("{}more: [[1]]\n", " ".repeat(62)));
        assert_eq!(check_nesting(&text, file).unwrap_err().location.line, 64);
        // Brackets inside plain and quoted scalars, comments and block scalars, many times
        // over, open no collection.
        let line = "  c: { transform: regex_replace, pattern: '[{[{\\d{3}', with: \"[[{{\\\"\" } # [[[[\n  d: a[b{c\n  e: |\n    [[[[[[[[\n    {{{{{{{{\n  f: 'it''s [' \n  g: O'Brien [x\n";
        let text: String = (0..100)
            .map(|i| line.replace(": ", &format!("{i}: ")))
            .collect();
        let text = format!("tables:\n{text}");
        check_nesting(&text, file).unwrap();
        from_str::<serde_yaml::Value>(&text, file).unwrap();
        // A flow mapping over several lines, and a second document.
        check_nesting("a: {b: [1,\n  2], c: 3}\n---\nd: [x]\n", file).unwrap();
    }

    #[test]
    fn long_problem_lists_show_the_first_and_count_the_rest() {
        let problems: Vec<String> = (0..900_000).map(|i| format!("problem {i}")).collect();
        let text = list_problems(&problems);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), MAX_PROBLEMS_SHOWN + 1);
        assert_eq!(lines[0], "problem 0");
        assert_eq!(
            lines[MAX_PROBLEMS_SHOWN],
            "... and 899,950 more problems (the first 50 are shown)"
        );
        assert_eq!(list_problems(&problems[..2]), "problem 0\nproblem 1");
        assert_eq!(more_problems(50), None);
        assert_eq!(
            more_problems(51).as_deref(),
            Some("... and 1 more problem (the first 50 are shown)")
        );
    }

    #[test]
    fn files_over_the_size_limit_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 10).unwrap();
        let err = read_file(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "the file is 16.0 MiB, over the limit of 16 MiB for a YAML file restage reads"
        );
        std::fs::write(&path, "a: 1\n").unwrap();
        assert_eq!(read_file(&path).unwrap(), "a: 1\n");
    }
}
