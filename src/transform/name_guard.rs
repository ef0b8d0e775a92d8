//! The guard of the registry: no module names a transform by a string.
//!
//! [`transform_names_are_written_only_in_the_registry`] reads every `.rs` file under `src/`
//! and fails on each string literal whose text is exactly a transform's name (`"email"`,
//! `"keep"`), outside the registry's declarations (`src/transform/registry/`). A stage that
//! wants to know something about a transform asks the registry (`registry::get(name)`, a
//! property of the definition, or the definition itself: `registry::EMAIL`); the rules loader
//! (`RuleSpec::from_value`, the YAML side) only carries the name the user wrote, and names no
//! transform itself.
//!
//! How the test tells a transform name from the same word in another vocabulary — decided
//! here, and the reason for each case written next to it:
//! - **Test code is not read**: items under `#[cfg(test)]` or `#[test]`, and the files of
//!   test modules (`#[cfg(test)] mod tests;`). Tests assert the names users write — the
//!   output contract — and may spell them.
//! - **Comments are not read**, nor are longer literals that merely contain a name (error
//!   messages such as "use `keep` to copy a column as is").
//! - **A literal followed by `:`** is a key of a JSON object written with `serde_json::json!`
//!   (the demo's documents hold `"email"` and `"city"` fields), not a rule.
//! - **Every other literal equal to a name needs an entry in [`OTHER_VOCABULARIES`]**: the
//!   words, the context that shows which vocabulary they belong to — the item (`const`,
//!   `static` or `fn`) they are written in, the function they are passed to, or a fragment of
//!   their line; never a file path, so an entry survives a file moving — and the reason.
//!   Adding an entry is a decision to justify in review: a transform name compared with a
//!   rule's field (`rule == "keep"`), matched on (`"hash" => …` over a rule), passed to a
//!   rule's constructor or listed (`const CHECKED = ["email", …]`) is exactly what the test
//!   exists to refuse.

use std::path::{Path, PathBuf};

use super::registry;

/// Where a word that is also a transform name means something else.
struct Vocabulary {
    /// The words it allows; empty for any transform name.
    words: &'static [&'static str],
    context: Context,
    reason: &'static str,
}

/// What shows which vocabulary a literal belongs to.
enum Context {
    /// It is written inside the `const`, `static` or `fn` of this name.
    Item(&'static str),
    /// It is an argument of a call to the function (or closure) of this name.
    Call(&'static str),
    /// Its line holds this fragment.
    Line(&'static str),
}

const OTHER_VOCABULARIES: &[Vocabulary] = &[
    Vocabulary {
        words: &["constant"],
        context: Context::Item("user_gen"),
        reason: "the generators of a rules file's `synthetic: … generate:` (`constant: web`), not transforms",
    },
    Vocabulary {
        words: &["name"],
        context: Context::Item("is_pg_name_type"),
        reason: "PostgreSQL's `name` type, which scan reads like text (issue 15)",
    },
    Vocabulary {
        words: &["name", "json", "uuid"],
        context: Context::Item("kind_of"),
        reason: "PostgreSQL's type names (`name`, `json`, `uuid` are types), mapped to kinds",
    },
    Vocabulary {
        words: &["name", "json", "uuid"],
        context: Context::Item("BINARY_COPY_TYPES"),
        reason: "PostgreSQL's type names whose binary COPY format is safe to copy (issue 14)",
    },
    Vocabulary {
        words: &["name", "json"],
        context: Context::Item("travels_in_binary"),
        reason: "PostgreSQL's type names, mapped to their binary COPY layout (issue 14)",
    },
    Vocabulary {
        words: &["json", "hash"],
        context: Context::Item("value_kind"),
        reason: "the Redis value kinds of the cache warmer's config (`value: hash` is a Redis hash)",
    },
    Vocabulary {
        words: &["json"],
        context: Context::Item("default_warm_value"),
        reason: "the cache warmer's default value kind",
    },
    Vocabulary {
        words: &["name"],
        context: Context::Call("err"),
        reason: "the `name` field of a health check, in the error about it",
    },
    Vocabulary {
        words: &["name"],
        context: Context::Call("name_only"),
        reason: "the evidence label of a finding made from a column's name",
    },
    Vocabulary {
        words: &["name"],
        context: Context::Call("judge_values"),
        reason: "the evidence label of a finding made from a column's name",
    },
    Vocabulary {
        words: &[],
        context: Context::Item("DICTIONARY"),
        reason: "scan's dictionary of column-name phrases, with their weights and languages",
    },
    Vocabulary {
        words: &[],
        context: Context::Item("META_AFTER"),
        reason: "column-name words that mark data about a value (`email_status`, `user_uuid`)",
    },
    Vocabulary {
        words: &["name"],
        context: Context::Item("GENERIC_NAMES"),
        reason: "column names the detectors read as \"a name\", whatever it names",
    },
    Vocabulary {
        words: &[],
        context: Context::Line("Category::"),
        reason: "scan's category identifiers (its `--json` output), which share words with transforms",
    },
];

impl Vocabulary {
    fn allows(&self, literal: &Literal) -> bool {
        let word = self.words.is_empty() || self.words.contains(&literal.text.as_str());
        word && match self.context {
            Context::Item(name) => literal.items.iter().any(|i| i == name),
            Context::Call(name) => literal.callee.as_deref() == Some(name),
            Context::Line(fragment) => literal.line.contains(fragment),
        }
    }
}

/// The folder of the declarations: the one place names are written.
const REGISTRY: &str = "transform/registry";

#[test]
fn transform_names_are_written_only_in_the_registry() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let lexed: Vec<(PathBuf, Lexed)> = files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a source file");
            let lexed = lex(&text);
            (path, lexed)
        })
        .collect();
    // Files of test modules, and the folders of their children.
    let test_modules: Vec<PathBuf> = lexed
        .iter()
        .flat_map(|(path, l)| l.test_modules.iter().map(move |m| module_path(path, m)))
        .collect();
    let is_test_file = |path: &Path| {
        test_modules.iter().any(|m| {
            path == m.with_extension("rs") || path == m.join("mod.rs") || path.starts_with(m)
        })
    };
    assert!(
        OTHER_VOCABULARIES
            .iter()
            .all(|v| !v.reason.trim().is_empty()),
        "every entry of OTHER_VOCABULARIES says why"
    );
    let names: Vec<&str> = registry::names().collect();
    let mut found = Vec::new();
    for (path, l) in &lexed {
        let relative = path.strip_prefix(src).unwrap_or(path);
        if relative.starts_with(REGISTRY) || l.whole_file_is_test || is_test_file(path) {
            continue;
        }
        for literal in &l.literals {
            if !names.contains(&literal.text.as_str()) || literal.followed_by_colon {
                continue;
            }
            let allowed = OTHER_VOCABULARIES.iter().any(|v| v.allows(literal));
            if !allowed {
                found.push(format!(
                    "src/{}:{}: \"{}\" in `{}`",
                    relative.display(),
                    literal.line_number,
                    literal.text,
                    literal.line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "transform names written as strings outside the registry (ask `transform::registry` \
         instead, or, for another vocabulary, add a reasoned entry to OTHER_VOCABULARIES):\n{}",
        found.join("\n")
    );
}

/// The lexer itself, on the shapes the guard relies on.
#[test]
fn the_lexer_sees_literals_comments_items_and_test_code() {
    let text = r####"
// "keep" in a comment
/* "keep" /* nested */ "keep" */
fn a() -> &'static str { let c = '"'; let d = b'"'; let e = '\''; "hash" }
let r = r#"raw "email" inside"#;
let k = json!({ "city": 1 });
#[cfg(test)]
mod tests {
    fn t() { "email" }
}
#[cfg(test)]
mod more;
#[test]
fn u() { let x = "phone"; }
const LIST: &[&str] = &["uuid", "ipv4"];
fn after(x: fn(u8) -> u8) { call(1, "mask"); }
"####;
    let l = lex(text);
    let shown: Vec<(&str, usize, bool, String, Option<&str>)> = l
        .literals
        .iter()
        .map(|s| {
            (
                s.text.as_str(),
                s.line_number,
                s.followed_by_colon,
                s.items.join("/"),
                s.callee.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("hash", 4, false, "a".to_string(), None),
            ("raw \"email\" inside", 5, false, String::new(), None),
            ("city", 6, true, String::new(), None),
            ("uuid", 15, false, "LIST".to_string(), None),
            ("ipv4", 15, false, "LIST".to_string(), None),
            ("mask", 16, false, "after".to_string(), Some("call")),
        ]
    );
    assert_eq!(l.test_modules, vec!["more".to_string()]);
    assert!(!l.whole_file_is_test);
    assert!(lex("#![cfg(test)]\nfn a() { \"keep\" }").whole_file_is_test);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("a source folder");
    for entry in entries {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Where the module `name` declared in `file` lives, without its extension: beside `file` for
/// `mod.rs`, `lib.rs` and `main.rs`, in the folder named after `file` otherwise.
fn module_path(file: &Path, name: &str) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(""));
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if matches!(stem, "mod" | "lib" | "main") {
        dir.join(name)
    } else {
        dir.join(stem).join(name)
    }
}

/// A string literal of non-test code.
#[derive(Debug)]
struct Literal {
    /// Its text as written between the quotes (escapes left as they are).
    text: String,
    line_number: usize,
    /// The whole line it is on.
    line: String,
    /// The next token is `:`.
    followed_by_colon: bool,
    /// The `const`, `static` and `fn` items it is written in, outermost first.
    items: Vec<String>,
    /// The function it is an argument of: the name before the innermost open parenthesis,
    /// when that is the innermost open delimiter.
    callee: Option<String>,
}

#[derive(Debug, Default)]
struct Lexed {
    literals: Vec<Literal>,
    /// Modules declared as `#[cfg(test)] mod name;`.
    test_modules: Vec<String>,
    /// The file starts with `#![cfg(test)]`.
    whole_file_is_test: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String, usize),
    Ident(String),
    Punct(char),
}

/// Splits Rust source into string literals, identifiers and punctuation, leaving out comments
/// and character literals, then drops the items under `#[cfg(test)]` and `#[test]`.
fn lex(text: &str) -> Lexed {
    let tokens = tokenize(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Lexed::default();
    // Open delimiters, each with the name before it (the callee of a `(`).
    let mut open: Vec<(char, Option<String>)> = Vec::new();
    // Named items being read: name, the depth they started at, and whether a `;` ends them
    // (`const`, `static`) or their body's `}` does (`fn`).
    let mut items: Vec<(String, usize, bool)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some(after) = test_attribute(&tokens, i, true) {
            out.whole_file_is_test = true;
            i = after;
            continue;
        }
        if let Some(after) = test_attribute(&tokens, i, false) {
            i = skip_item(&tokens, after, &mut out.test_modules);
            continue;
        }
        match &tokens[i] {
            Token::Ident(kw) if matches!(kw.as_str(), "fn" | "const" | "static") => {
                let mut j = i + 1;
                if tokens.get(j) == Some(&Token::Ident("mut".to_string())) {
                    j += 1;
                }
                if let Some(Token::Ident(name)) = tokens.get(j)
                    && !matches!(name.as_str(), "fn" | "unsafe" | "extern" | "async")
                {
                    items.push((name.clone(), open.len(), kw != "fn"));
                }
            }
            Token::Punct(c @ ('(' | '[' | '{')) => {
                let before = match i.checked_sub(1).map(|k| &tokens[k]) {
                    Some(Token::Ident(name)) => Some(name.clone()),
                    _ => None,
                };
                open.push((*c, before));
            }
            Token::Punct(c @ (')' | ']' | '}')) => {
                open.pop();
                if *c == '}' {
                    while items.last().is_some_and(|(_, depth, by_semicolon)| {
                        !by_semicolon && *depth == open.len()
                    }) {
                        items.pop();
                    }
                }
            }
            Token::Punct(';') => {
                while items
                    .last()
                    .is_some_and(|(_, depth, _)| *depth == open.len())
                {
                    items.pop();
                }
            }
            Token::Str(s, line_number) => {
                let callee = match open.last() {
                    Some(('(', callee)) => callee.clone(),
                    _ => None,
                };
                out.literals.push(Literal {
                    text: s.clone(),
                    line_number: *line_number,
                    line: lines
                        .get(line_number.saturating_sub(1))
                        .unwrap_or(&"")
                        .to_string(),
                    followed_by_colon: tokens.get(i + 1) == Some(&Token::Punct(':'))
                        && tokens.get(i + 2) != Some(&Token::Punct(':')),
                    items: items.iter().map(|(name, _, _)| name.clone()).collect(),
                    callee,
                });
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The index after `#[cfg(test)]` or `#[test]` at `i` (`#![cfg(test)]` when `inner`).
fn test_attribute(tokens: &[Token], i: usize, inner: bool) -> Option<usize> {
    let punct = |c| Token::Punct(c);
    let ident = |s: &str| Token::Ident(s.to_string());
    let mut shapes: Vec<Vec<Token>> = vec![vec![
        punct('#'),
        punct('['),
        ident("cfg"),
        punct('('),
        ident("test"),
        punct(')'),
        punct(']'),
    ]];
    if inner {
        shapes[0].insert(1, punct('!'));
    } else {
        shapes.push(vec![punct('#'), punct('['), ident("test"), punct(']')]);
    }
    shapes
        .iter()
        .find(|shape| tokens[i..].starts_with(shape))
        .map(|shape| i + shape.len())
}

/// The index after the item starting at `i` (its attributes, then up to a `;` or the `}`
/// closing its body); a `mod name;` it declares goes to `modules`.
fn skip_item(tokens: &[Token], mut i: usize, modules: &mut Vec<String>) -> usize {
    let start = i;
    let mut depth = 0usize;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') | Token::Punct('[') | Token::Punct('(') => depth += 1,
            Token::Punct('}') | Token::Punct(']') | Token::Punct(')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 && tokens[i] == Token::Punct('}') {
                    return i + 1;
                }
            }
            Token::Punct(';') if depth == 0 => {
                let item = &tokens[start..i];
                if let [.., Token::Ident(kw), Token::Ident(name)] = item
                    && kw == "mod"
                {
                    modules.push(name.clone());
                }
                return i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    i
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let count_lines = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to.min(chars.len())]
            .iter()
            .filter(|c| **c == '\n')
            .count();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i, &mut line);
        } else if c == '"' {
            let start_line = line;
            let start = i;
            i += 1;
            let mut s = String::new();
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    s.push(chars[i]);
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            count_lines(start, i, &mut line);
            tokens.push(Token::Str(s, start_line));
        } else if c == '\'' {
            // A character literal ('x', '\n', '\''), or a lifetime ('a, 'static).
            if next == Some('\\') {
                // Past the quote, the backslash and the escaped character ('\'' included).
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                // A lifetime: its name is no identifier of its own (`'static` is no item).
                tokens.push(Token::Punct('\''));
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = chars.get(i).copied();
            if matches!(word.as_str(), "r" | "br" | "cr") && matches!(after, Some('"' | '#')) {
                // A raw string: r"…", r#"…"#, with as many # as it opened with.
                let mut hashes = 0;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if chars.get(i) != Some(&'"') {
                    tokens.push(Token::Ident(word));
                    continue;
                }
                let start_line = line;
                let body_start = i + 1;
                let mut j = body_start;
                let end = loop {
                    if j >= chars.len() {
                        break j;
                    }
                    if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                        break j;
                    }
                    j += 1;
                };
                let s: String = chars[body_start..end.min(chars.len())].iter().collect();
                count_lines(body_start, end, &mut line);
                i = end + 1 + hashes;
                tokens.push(Token::Str(s, start_line));
            } else if matches!(word.as_str(), "b" | "c") && after == Some('\'') {
                // A byte literal: b'x', b'\''.
                i += 1;
                if chars.get(i + 1) == Some(&'\\') {
                    i += 1;
                }
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if !(matches!(word.as_str(), "b" | "c") && after == Some('"')) {
                // (b"…" and c"…" continue as a plain string at the quote.)
                tokens.push(Token::Ident(word));
            }
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}
