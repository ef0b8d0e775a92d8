//! Reading YAML files (restage.yaml, rules) into typed structs with errors that point at the
//! file, line and column at fault.
//!
//! serde_yaml gives positions for syntax and type errors. Errors found after deserializing
//! (a rule for a column that does not exist, an unset `${VAR}`) need the position of a key
//! too, so [`KeyIndex`] records where every mapping key starts, by its path from the root.

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

/// Where each mapping key of a YAML document starts, by its path of keys from the root.
/// Sequence items are addressed by their index as a decimal string.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    file: PathBuf,
    positions: HashMap<Vec<String>, (usize, usize)>,
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
            let key: Vec<String> = path[..len].iter().map(|s| s.to_string()).collect();
            if let Some(&(line, column)) = self.positions.get(&key) {
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
        self.positions
            .keys()
            .filter(|k| k.len() == path.len() + 1 && k.iter().zip(path).all(|(a, b)| a == b))
            .map(|k| k[path.len()].clone())
            .collect()
    }
}

#[derive(Default)]
struct IndexBuilder {
    positions: HashMap<Vec<String>, (usize, usize)>,
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
                    if self.positions.insert(self.path.clone(), at).is_some() {
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
}
