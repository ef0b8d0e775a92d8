//! The module graph of `src/` (issue 10). Every `crate::` path of the library, and every
//! `super::` path that climbs out of a top-level module, outside `#[cfg(test)]` code, is an
//! arrow between two top-level modules (a folder or a file is one module; lib.rs and main.rs
//! are not modules). The arrows must form no cycle, and each must be allowed by the table in
//! README.md's Architecture section (the lines between the `allowed-dependencies` markers, one
//! `module: dep, dep, …` a line), read at test time so the README and this test cannot
//! disagree.
//!
//! No database: the test reads files. It follows the `mod` declarations from src/lib.rs, so a
//! file the compiler does not see is not read, and a `#[cfg(test)] mod tests;` file is left
//! out. The reader is a small Rust lexer (comments, strings, raw strings, char literals and
//! lifetimes), not a regular expression over the text: a path in a comment or a string is no
//! arrow, and every path of a `use crate::{a, b::{c, d}}` group is one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

const START_MARKER: &str = "<!-- allowed-dependencies:start -->";
const END_MARKER: &str = "<!-- allowed-dependencies:end -->";

#[test]
fn src_has_no_cycle_between_top_level_modules() {
    let graph = ModuleGraph::read(&manifest_dir().join("src")).unwrap_or_else(|e| panic!("{e}"));
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "{} import cycle(s) between the top-level modules of src/ (arrows from `crate::` paths):\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

#[test]
fn every_arrow_is_allowed_by_the_readme_table() {
    let dir = manifest_dir();
    let graph = ModuleGraph::read(&dir.join("src")).unwrap_or_else(|e| panic!("{e}"));
    let readme_path = dir.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("{}: {e}", readme_path.display()));
    let table = AllowedTable::parse(&readme).unwrap_or_else(|problems| {
        panic!(
            "README.md: the allowed-dependencies table:\n{}",
            problems.join("\n")
        )
    });
    let problems = table.check(&graph);
    assert!(
        problems.is_empty(),
        "{} problem(s) between src/ and README.md's allowed-dependencies table:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ----- Lexer -----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A string literal's text between its quotes (escapes left as written).
    Str(String),
    /// A char or number literal.
    Literal,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// The tokens of a Rust source file, comments dropped. Errors on an unterminated comment,
/// string or raw string (the test then names the file).
fn lex(src: &str) -> Result<Vec<Token>, String> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0;
            loop {
                if i >= c.len() {
                    return Err(format!("line {start_line}: unterminated block comment"));
                }
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some((hashes, quote)) = raw_string_start(&c, i) {
            // r"…", r#"…"#, br"…", cr"…": no escapes; ends at `"` and as many `#`.
            i = quote + 1;
            let text_start = i;
            loop {
                if i >= c.len() {
                    return Err(format!("line {start_line}: unterminated raw string"));
                }
                if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    break;
                }
                if c[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            out.push(Token {
                tok: Tok::Str(c[text_start..i].iter().collect()),
                line: start_line,
            });
            i += 1 + hashes;
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && at(i + 1) == '"') {
            i += if ch == '"' { 1 } else { 2 };
            let text_start = i;
            loop {
                if i >= c.len() {
                    return Err(format!("line {start_line}: unterminated string"));
                }
                match c[i] {
                    '\\' => {
                        if at(i + 1) == '\n' {
                            line += 1;
                        }
                        i += 2;
                    }
                    '"' => break,
                    '\n' => {
                        line += 1;
                        i += 1;
                    }
                    _ => i += 1,
                }
            }
            out.push(Token {
                tok: Tok::Str(c[text_start..i].iter().collect()),
                line: start_line,
            });
            i += 1;
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            let q = if ch == '\'' { i } else { i + 1 };
            if at(q + 1) == '\\' {
                // An escaped char: '\n', '\'', '\u{1F600}'.
                let mut k = q + 3;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                i = k + 1;
                out.push(Token {
                    tok: Tok::Literal,
                    line,
                });
            } else if at(q + 2) == '\'' && at(q + 1) != '\n' {
                i = q + 3;
                out.push(Token {
                    tok: Tok::Literal,
                    line,
                });
            } else {
                // A lifetime or a label: the name that follows is lexed as an identifier.
                out.push(Token {
                    tok: Tok::Punct('\''),
                    line,
                });
                i = q + 1;
            }
        } else if ch == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
            // A raw identifier, r#type.
            let (name, end) = ident(&c, i + 2);
            out.push(Token {
                tok: Tok::Ident(name),
                line,
            });
            i = end;
        } else if is_ident_start(ch) {
            let (name, end) = ident(&c, i);
            out.push(Token {
                tok: Tok::Ident(name),
                line,
            });
            i = end;
        } else if ch.is_ascii_digit() {
            i += 1;
            while i < c.len()
                && (c[i].is_alphanumeric()
                    || c[i] == '_'
                    || (c[i] == '.' && at(i + 1).is_ascii_digit()))
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Literal,
                line,
            });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    Ok(out)
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn ident(c: &[char], start: usize) -> (String, usize) {
    let mut end = start;
    while end < c.len() && (c[end] == '_' || c[end].is_alphanumeric()) {
        end += 1;
    }
    (c[start..end].iter().collect(), end)
}

/// At `i`, the start of a raw string (`r`, `br` or `cr`, then `#`s, then `"`): the number of
/// `#`s and the index of the quote.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    let mut k = i;
    if matches!(c.get(k), Some('b' | 'c')) {
        k += 1;
    }
    if c.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let mut hashes = 0;
    while c.get(k) == Some(&'#') {
        hashes += 1;
        k += 1;
    }
    (c.get(k) == Some(&'"')).then_some((hashes, k))
}

// ----- Reading one file -----

/// What one file says about the crate.
#[derive(Debug, Default, PartialEq)]
struct FileScan {
    /// The first segment below the crate root of each path that reaches it (`config` of
    /// `crate::config::Config`, `Error` of `crate::Error`), with its line.
    roots: Vec<(String, usize)>,
    /// `mod name;` declarations outside test code: the inline modules around it (usually
    /// none) and the name.
    children: Vec<(Vec<String>, String)>,
}

fn is_punct(t: Option<&Token>, c: char) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(p), .. }) if *p == c)
}

fn is_ident(t: Option<&Token>, name: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(n), .. }) if n == name)
}

fn is_sep(t: Option<&Token>) -> bool {
    matches!(
        t,
        Some(Token {
            tok: Tok::PathSep,
            ..
        })
    )
}

/// The index of the bracket closing the one at `open` (`{`, `(` or `[`).
fn matching(toks: &[Token], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(k);
                }
            }
            _ => {}
        }
    }
    Err(format!(
        "line {}: unbalanced bracket",
        toks.get(open).map(|t| t.line).unwrap_or(0)
    ))
}

/// Reads one file of module depth `depth` (1 for src/config.rs and src/refresh/mod.rs, 2 for
/// src/refresh/live.rs): the crate-root names its paths reach, and the files it declares.
fn scan_file(src: &str, depth: usize) -> Result<FileScan, String> {
    let toks = lex(src)?;
    let mut scan = FileScan::default();
    let mut braces = 0usize;
    // Inline `mod name { … }` around the current token: name and the brace depth inside it.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        match &t.tok {
            Tok::Punct('#') => {
                let inner = is_punct(toks.get(i + 1), '!');
                let open = if inner { i + 2 } else { i + 1 };
                if !is_punct(toks.get(open), '[') {
                    i += 1;
                    continue;
                }
                let close = matching(&toks, open)?;
                let attr = &toks[open + 1..close];
                if is_ident(attr.first(), "path") {
                    return Err(format!(
                        "line {}: #[path] on a module is not supported by this test",
                        t.line
                    ));
                }
                if cfg_is_off(attr) {
                    if !inner {
                        i = skip_item(&toks, close + 1)?;
                    } else if let Some(&(_, level)) = inline.last() {
                        // `#![cfg(test)]` inside an inline module: skip to its closing brace.
                        let mut k = close + 1;
                        let mut b = braces;
                        while k < toks.len() {
                            match toks[k].tok {
                                Tok::Punct('{') => b += 1,
                                Tok::Punct('}') if b == level => break,
                                Tok::Punct('}') => b -= 1,
                                _ => {}
                            }
                            k += 1;
                        }
                        i = k;
                    } else {
                        // `#![cfg(test)]` at the top: the whole file is test code.
                        return Ok(FileScan::default());
                    }
                } else {
                    // Paths in the attribute are read like code; serde names functions and
                    // types in strings (`#[serde(with = "crate::units::size")]`).
                    for w in attr.windows(3) {
                        if let [
                            Token {
                                tok: Tok::Ident(key),
                                ..
                            },
                            Token {
                                tok: Tok::Punct('='),
                                ..
                            },
                            Token {
                                tok: Tok::Str(path),
                                line,
                            },
                        ] = w
                            && SERDE_PATH_KEYS.contains(&key.as_str())
                        {
                            let inside = scan_file(path, depth + inline.len())?;
                            scan.roots
                                .extend(inside.roots.into_iter().map(|(n, _)| (n, *line)));
                        }
                    }
                    i = open + 1;
                }
            }
            Tok::Ident(k) if k == "mod" => {
                if let Some(Token {
                    tok: Tok::Ident(name),
                    ..
                }) = toks.get(i + 1)
                {
                    if is_punct(toks.get(i + 2), ';') {
                        let around = inline.iter().map(|(n, _)| n.clone()).collect();
                        scan.children.push((around, name.clone()));
                        i += 3;
                        continue;
                    }
                    if is_punct(toks.get(i + 2), '{') {
                        braces += 1;
                        inline.push((name.clone(), braces));
                        i += 3;
                        continue;
                    }
                }
                i += 1;
            }
            Tok::Punct('{') => {
                braces += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|&(_, level)| level == braces) {
                    inline.pop();
                }
                braces = braces.saturating_sub(1);
                i += 1;
            }
            // `crate::…` and `$crate::…` (in macros).
            Tok::Ident(k) if k == "crate" && is_sep(toks.get(i + 1)) => {
                let (names, end) = path_roots(&toks, i + 2)?;
                scan.roots.extend(names.into_iter().map(|n| (n, t.line)));
                i = end;
            }
            // `super::super::…`: leaves the top-level module only when it climbs to the root.
            Tok::Ident(k) if k == "super" && is_sep(toks.get(i + 1)) => {
                let mut climbs = 0;
                let mut j = i;
                while is_ident(toks.get(j), "super") && is_sep(toks.get(j + 1)) {
                    climbs += 1;
                    j += 2;
                }
                if climbs == depth + inline.len() {
                    let (names, end) = path_roots(&toks, j)?;
                    scan.roots.extend(names.into_iter().map(|n| (n, t.line)));
                    i = end;
                } else {
                    i = j;
                }
            }
            _ => i += 1,
        }
    }
    Ok(scan)
}

/// After `crate::` at `at`: the root names the path reaches (one, or one per element of a
/// `{…}` group, nested groups included; `*` for a glob) and the index after what was read.
fn path_roots(toks: &[Token], at: usize) -> Result<(Vec<String>, usize), String> {
    match toks.get(at).map(|t| &t.tok) {
        Some(Tok::Ident(name)) if name == "self" => Ok((Vec::new(), at + 1)),
        Some(Tok::Ident(name)) => Ok((vec![name.clone()], at + 1)),
        Some(Tok::Punct('*')) => Ok((vec!["*".to_string()], at + 1)),
        Some(Tok::Punct('{')) => {
            let close = matching(toks, at)?;
            let mut names = Vec::new();
            let mut k = at + 1;
            let mut element_start = true;
            while k < close {
                if element_start {
                    element_start = false;
                    let (mut n, end) = path_roots(toks, k)?;
                    names.append(&mut n);
                    k = end;
                    continue;
                }
                match toks[k].tok {
                    Tok::Punct('{' | '(' | '[') => k = matching(toks, k)? + 1,
                    Tok::Punct(',') => {
                        element_start = true;
                        k += 1;
                    }
                    _ => k += 1,
                }
            }
            Ok((names, close + 1))
        }
        _ => Ok((Vec::new(), at)),
    }
}

/// Whether `#[…]` (its tokens inside the brackets) is a `cfg` that is false when not
/// testing: `cfg(test)`, `cfg(all(test, …))`, … Other configuration options (`unix`,
/// features) count as unknown, so code behind them is read.
fn cfg_is_off(attr: &[Token]) -> bool {
    if !is_ident(attr.first(), "cfg") || !is_punct(attr.get(1), '(') {
        return false;
    }
    let Ok(close) = matching(attr, 1) else {
        return false;
    };
    cfg_value(&attr[2..close]) == Some(false)
}

/// The value of a cfg predicate with `test` false and every other option unknown (None).
fn cfg_value(pred: &[Token]) -> Option<bool> {
    let args = |toks: &[Token]| -> Vec<Option<bool>> {
        // `name(a, b, …)`: the values of a, b, … (split at top-level commas).
        let Ok(close) = matching(toks, 1) else {
            return vec![None];
        };
        let inner = &toks[2..close];
        let mut parts = Vec::new();
        let mut start = 0;
        let mut depth = 0usize;
        for (k, t) in inner.iter().enumerate() {
            match t.tok {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth = depth.saturating_sub(1),
                Tok::Punct(',') if depth == 0 => {
                    parts.push(cfg_value(&inner[start..k]));
                    start = k + 1;
                }
                _ => {}
            }
        }
        if start < inner.len() {
            parts.push(cfg_value(&inner[start..]));
        }
        parts
    };
    match pred {
        [
            Token {
                tok: Tok::Ident(n), ..
            },
        ] if n == "test" => Some(false),
        [
            Token {
                tok: Tok::Ident(n), ..
            },
            rest @ ..,
        ] if is_punct(rest.first(), '(') => match n.as_str() {
            "not" => args(pred).first().copied().flatten().map(|v| !v),
            "all" => {
                let values = args(pred);
                if values.contains(&Some(false)) {
                    Some(false)
                } else if values.iter().all(|v| *v == Some(true)) {
                    Some(true)
                } else {
                    None
                }
            }
            "any" => {
                let values = args(pred);
                if values.contains(&Some(true)) {
                    Some(true)
                } else if values.iter().all(|v| *v == Some(false)) {
                    Some(false)
                } else {
                    None
                }
            }
            _ => None,
        },
        _ => None,
    }
}

/// serde attribute keys whose string value is a Rust path.
const SERDE_PATH_KEYS: [&str; 8] = [
    "with",
    "serialize_with",
    "deserialize_with",
    "default",
    "from",
    "try_from",
    "into",
    "remote",
];

/// Keywords that start an item (after `pub` / `pub(…)`): such an item ends with `;` or with
/// its block. Anything else behind an attribute (a field, a variant, a statement, an
/// expression) ends at `,` or `;`, or where the enclosing bracket closes.
const ITEM_KEYWORDS: [&str; 15] = [
    "fn",
    "mod",
    "impl",
    "use",
    "struct",
    "enum",
    "union",
    "const",
    "static",
    "type",
    "trait",
    "extern",
    "unsafe",
    "async",
    "macro_rules",
];

/// The index after the item (or field, statement…) that starts at `start`, its own further
/// attributes included.
fn skip_item(toks: &[Token], start: usize) -> Result<usize, String> {
    let mut i = start;
    while is_punct(toks.get(i), '#') {
        let open = if is_punct(toks.get(i + 1), '!') {
            i + 2
        } else {
            i + 1
        };
        if !is_punct(toks.get(open), '[') {
            break;
        }
        i = matching(toks, open)? + 1;
    }
    let mut j = i;
    if is_ident(toks.get(j), "pub") {
        j += 1;
        if is_punct(toks.get(j), '(') {
            j = matching(toks, j)? + 1;
        }
    }
    let item = matches!(toks.get(j), Some(Token { tok: Tok::Ident(k), .. }) if ITEM_KEYWORDS.contains(&k.as_str()));
    if !item && is_punct(toks.get(i), '{') {
        return Ok(matching(toks, i)? + 1);
    }
    let mut k = i;
    while k < toks.len() {
        match toks[k].tok {
            Tok::Punct('(' | '[') => k = matching(toks, k)? + 1,
            Tok::Punct('{') => {
                let end = matching(toks, k)? + 1;
                if item {
                    return Ok(end);
                }
                k = end;
            }
            Tok::Punct(';') => return Ok(k + 1),
            Tok::Punct(',') if !item => return Ok(k + 1),
            Tok::Punct('}' | ')' | ']') => return Ok(k),
            _ => k += 1,
        }
    }
    Ok(toks.len())
}

// ----- The crate root -----

/// What src/lib.rs declares: its modules, the names it re-exports (`pub use error::{Error,
/// Result}` makes `crate::Error` mean the `error` module), and the items it defines itself.
#[derive(Debug, Default)]
struct Root {
    modules: BTreeSet<String>,
    reexports: BTreeMap<String, String>,
    items: BTreeSet<String>,
}

fn scan_root(src: &str) -> Result<Root, String> {
    let toks = lex(src)?;
    let scan = scan_file(src, 0)?;
    let mut root = Root {
        modules: scan.children.into_iter().map(|(_, n)| n).collect(),
        ..Root::default()
    };
    let mut i = 0;
    let mut braces = 0usize;
    while i < toks.len() {
        match &toks[i].tok {
            Tok::Punct('#') if is_punct(toks.get(i + 1), '[') => {
                let close = matching(&toks, i + 1)?;
                i = if cfg_is_off(&toks[i + 2..close]) {
                    skip_item(&toks, close + 1)?
                } else {
                    close + 1
                };
            }
            Tok::Punct('{') => {
                braces += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(k) if k == "use" && braces == 0 => {
                let mut leaves = Vec::new();
                i = use_tree(&toks, i + 1, None, None, &mut leaves)?;
                for (first, leaf) in leaves {
                    root.reexports.insert(leaf, first);
                }
            }
            Tok::Ident(k)
                if braces == 0
                    && matches!(
                        k.as_str(),
                        "fn" | "struct" | "enum" | "union" | "const" | "static" | "type" | "trait"
                    ) =>
            {
                if let Some(Token {
                    tok: Tok::Ident(name),
                    ..
                }) = toks.get(i + 1)
                {
                    root.items.insert(name.clone());
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(root)
}

/// A use tree at `i` (`a::b::{C, d::E as F, self}`): pushes (first segment, name it binds)
/// for each leaf; returns the index after the tree. A leading `crate::` is skipped.
fn use_tree(
    toks: &[Token],
    mut i: usize,
    mut first: Option<String>,
    mut last: Option<String>,
    out: &mut Vec<(String, String)>,
) -> Result<usize, String> {
    if is_sep(toks.get(i)) {
        i += 1;
    }
    loop {
        match toks.get(i).map(|t| &t.tok) {
            Some(Tok::Ident(name)) if name == "crate" && first.is_none() => {
                i += 1;
                if is_sep(toks.get(i)) {
                    i += 1;
                }
            }
            Some(Tok::Ident(name)) if name == "self" => {
                if let (Some(f), Some(l)) = (&first, &last) {
                    out.push((f.clone(), l.clone()));
                }
                return Ok(i + 1);
            }
            Some(Tok::Ident(name)) => {
                let name = name.clone();
                first.get_or_insert_with(|| name.clone());
                last = Some(name.clone());
                i += 1;
                if is_sep(toks.get(i)) {
                    i += 1;
                    continue;
                }
                let bound = if is_ident(toks.get(i), "as") {
                    i += 1;
                    match toks.get(i).map(|t| &t.tok) {
                        Some(Tok::Ident(alias)) => {
                            i += 1;
                            alias.clone()
                        }
                        _ => name,
                    }
                } else {
                    name
                };
                if let Some(f) = &first {
                    out.push((f.clone(), bound));
                }
                return Ok(i);
            }
            Some(Tok::Punct('*')) => {
                if let Some(f) = &first {
                    out.push((f.clone(), "*".to_string()));
                }
                return Ok(i + 1);
            }
            Some(Tok::Punct('{')) => {
                let close = matching(toks, i)?;
                let mut k = i + 1;
                while k < close {
                    if is_punct(toks.get(k), ',') {
                        k += 1;
                        continue;
                    }
                    let end = use_tree(toks, k, first.clone(), last.clone(), out)?;
                    k = end.max(k + 1);
                }
                return Ok(close + 1);
            }
            _ => return Ok(i),
        }
    }
}

// ----- The graph -----

/// Where an arrow is first written, and how many paths make it.
#[derive(Debug, Clone)]
struct Seen {
    file: String,
    line: usize,
    paths: usize,
}

#[derive(Debug, Default)]
struct ModuleGraph {
    modules: BTreeSet<String>,
    arrows: BTreeMap<String, BTreeMap<String, Seen>>,
}

impl ModuleGraph {
    /// Reads src/lib.rs and every module file it reaches.
    fn read(src_dir: &Path) -> Result<ModuleGraph, String> {
        let lib = src_dir.join("lib.rs");
        let text = std::fs::read_to_string(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        let root = scan_root(&text).map_err(|e| format!("{}: {e}", lib.display()))?;
        let mut graph = ModuleGraph {
            modules: root.modules.clone(),
            ..ModuleGraph::default()
        };
        let mut problems = Vec::new();
        for top in &root.modules {
            let mut pending = vec![(module_file(src_dir, top)?, 1usize)];
            while let Some((file, depth)) = pending.pop() {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let shown = file
                    .strip_prefix(src_dir.parent().unwrap_or(src_dir))
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                let scan = scan_file(&text, depth).map_err(|e| format!("{shown}: {e}"))?;
                for (name, line) in scan.roots {
                    let target = if root.modules.contains(&name) {
                        name
                    } else if let Some(module) = root.reexports.get(&name) {
                        module.clone()
                    } else if root.items.contains(&name) {
                        continue;
                    } else {
                        problems.push(format!(
                            "{shown}:{line}: `crate::{name}` names no module of src/lib.rs"
                        ));
                        continue;
                    };
                    if &target == top {
                        continue;
                    }
                    graph
                        .arrows
                        .entry(top.clone())
                        .or_default()
                        .entry(target)
                        .and_modify(|s| {
                            // Name the first place in file order, whatever order files are read in.
                            if (shown.as_str(), line) < (s.file.as_str(), s.line) {
                                s.file = shown.clone();
                                s.line = line;
                            }
                            s.paths += 1;
                        })
                        .or_insert(Seen {
                            file: shown.clone(),
                            line,
                            paths: 1,
                        });
                }
                let dir = children_dir(&file);
                for (around, child) in scan.children {
                    let mut d = dir.clone();
                    d.extend(&around);
                    pending.push((module_file(&d, &child)?, depth + around.len() + 1));
                }
            }
        }
        if problems.is_empty() {
            Ok(graph)
        } else {
            Err(problems.join("\n"))
        }
    }

    fn targets(&self, module: &str) -> impl Iterator<Item = &String> {
        self.arrows.get(module).into_iter().flat_map(|m| m.keys())
    }

    /// Each cycle: its modules, one shortest loop through it, and its arrows.
    fn cycles(&self) -> Vec<String> {
        strongly_connected(&self.modules, |m| self.targets(m).cloned().collect())
            .into_iter()
            .filter(|scc| scc.len() > 1)
            .map(|scc| {
                let first = scc.iter().next().cloned().unwrap_or_default();
                let path = shortest_loop(&first, |m| {
                    self.targets(m)
                        .filter(|t| scc.contains(*t))
                        .cloned()
                        .collect()
                });
                let inside: Vec<String> = scc
                    .iter()
                    .flat_map(|from| {
                        self.arrows
                            .get(from)
                            .into_iter()
                            .flat_map(|m| m.iter())
                            .filter(|(to, _)| scc.contains(*to))
                            .map(move |(to, seen)| {
                                format!("    {from} -> {to} ({}:{})", seen.file, seen.line)
                            })
                    })
                    .collect();
                format!(
                    "cycle of {} modules [{}], e.g. {}; its arrows:\n{}",
                    scc.len(),
                    scc.iter().cloned().collect::<Vec<_>>().join(", "),
                    path.join(" -> "),
                    inside.join("\n")
                )
            })
            .collect()
    }
}

/// `src/name.rs` or `src/name/mod.rs` (exactly one of them must exist).
fn module_file(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let flat = dir.join(format!("{name}.rs"));
    let folder = dir.join(name).join("mod.rs");
    match (flat.is_file(), folder.is_file()) {
        (true, false) => Ok(flat),
        (false, true) => Ok(folder),
        (true, true) => Err(format!(
            "both {} and {} exist",
            flat.display(),
            folder.display()
        )),
        (false, false) => Err(format!(
            "module {name}: neither {} nor {} exists",
            flat.display(),
            folder.display()
        )),
    }
}

/// Where the files of a file's own `mod x;` declarations live.
fn children_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_path_buf();
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod") | Some("lib") | Some("main") | None => parent,
        Some(stem) => parent.join(stem),
    }
}

/// Tarjan's strongly connected components, in a deterministic order.
fn strongly_connected(
    nodes: &BTreeSet<String>,
    next: impl Fn(&str) -> Vec<String>,
) -> Vec<BTreeSet<String>> {
    struct State {
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on_stack: BTreeSet<String>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit(v: &str, next: &dyn Fn(&str) -> Vec<String>, s: &mut State) {
        let n = s.index.len();
        s.index.insert(v.to_string(), n);
        s.low.insert(v.to_string(), n);
        s.stack.push(v.to_string());
        s.on_stack.insert(v.to_string());
        for w in next(v) {
            if !s.index.contains_key(&w) {
                visit(&w, next, s);
                let lw = s.low[&w];
                let lv = s.low[v];
                s.low.insert(v.to_string(), lv.min(lw));
            } else if s.on_stack.contains(&w) {
                let iw = s.index[&w];
                let lv = s.low[v];
                s.low.insert(v.to_string(), lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = w == v;
                scc.insert(w);
                if done {
                    break;
                }
            }
            s.out.push(scc);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(v, &next, &mut s);
        }
    }
    s.out.sort();
    s.out
}

/// The shortest path from `start` back to itself (breadth first), as module names.
fn shortest_loop(start: &str, next: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([start.to_string()]);
    while let Some(v) = queue.pop_front() {
        for w in next(&v) {
            if w == start {
                // Walk back from v to start, then turn it around.
                let mut path = vec![start.to_string()];
                let mut at = v.clone();
                while at != start {
                    path.push(at.clone());
                    at = came_from[&at].clone();
                }
                path.push(start.to_string());
                path.reverse();
                return path;
            }
            if !came_from.contains_key(&w) {
                came_from.insert(w.clone(), v.clone());
                queue.push_back(w);
            }
        }
    }
    vec![start.to_string()]
}

// ----- The README table -----

/// `module: dep, dep, …` lines between the markers: what each module may use.
#[derive(Debug, PartialEq)]
struct AllowedTable {
    allowed: BTreeMap<String, BTreeSet<String>>,
}

impl AllowedTable {
    fn parse(readme: &str) -> Result<AllowedTable, Vec<String>> {
        let mut problems = Vec::new();
        let lines: Vec<&str> = readme.lines().collect();
        let find = |marker: &str| -> Vec<usize> {
            lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.trim() == marker)
                .map(|(n, _)| n)
                .collect()
        };
        let (starts, ends) = (find(START_MARKER), find(END_MARKER));
        let (start, end) = match (starts.as_slice(), ends.as_slice()) {
            ([s], [e]) if s < e => (*s, *e),
            _ => {
                return Err(vec![format!(
                    "expected one line `{START_MARKER}` and, after it, one line `{END_MARKER}` (found {} and {})",
                    starts.len(),
                    ends.len()
                )]);
            }
        };
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c == '_' || c.is_alphanumeric());
        for (n, line) in lines.iter().enumerate().take(end).skip(start + 1) {
            let line = line.trim();
            if line.is_empty() || line.starts_with("```") {
                continue;
            }
            let at = n + 1;
            let Some((module, deps)) = line.split_once(':') else {
                problems.push(format!(
                    "README.md:{at}: `{line}` is not `module: dep, dep, …`"
                ));
                continue;
            };
            let module = module.trim();
            if !valid(module) {
                problems.push(format!("README.md:{at}: `{module}` is not a module name"));
                continue;
            }
            let mut set = BTreeSet::new();
            for dep in deps.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                if !valid(dep) {
                    problems.push(format!("README.md:{at}: `{dep}` is not a module name"));
                } else if dep == module {
                    problems.push(format!("README.md:{at}: {module} lists itself"));
                } else if !set.insert(dep.to_string()) {
                    problems.push(format!("README.md:{at}: {module} lists {dep} twice"));
                }
            }
            if allowed.insert(module.to_string(), set).is_some() {
                problems.push(format!("README.md:{at}: a second line for {module}"));
            }
        }
        for (module, deps) in &allowed {
            for dep in deps {
                if !allowed.contains_key(dep) {
                    problems.push(format!(
                        "{module} may use {dep}, which has no line of its own"
                    ));
                }
            }
        }
        let modules: BTreeSet<String> = allowed.keys().cloned().collect();
        for scc in strongly_connected(&modules, |m| {
            allowed
                .get(m)
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default()
        }) {
            if scc.len() > 1 {
                problems.push(format!(
                    "the table itself allows a cycle among [{}]",
                    scc.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if problems.is_empty() {
            Ok(AllowedTable { allowed })
        } else {
            Err(problems)
        }
    }

    /// Every arrow of `graph` outside the table, every module of src/ without a line, every
    /// line without a module.
    fn check(&self, graph: &ModuleGraph) -> Vec<String> {
        let mut problems = Vec::new();
        for module in &graph.modules {
            if !self.allowed.contains_key(module) {
                problems.push(format!(
                    "src/ has module {module}, which has no line in the table"
                ));
            }
        }
        for module in self.allowed.keys() {
            if !graph.modules.contains(module) {
                problems.push(format!(
                    "the table has a line for {module}, which src/lib.rs does not declare"
                ));
            }
        }
        for (from, targets) in &graph.arrows {
            let Some(allowed) = self.allowed.get(from) else {
                continue;
            };
            for (to, seen) in targets {
                if !allowed.contains(to) {
                    problems.push(format!(
                        "arrow not allowed: {from} -> {to} ({}:{}, {} path(s))",
                        seen.file, seen.line, seen.paths
                    ));
                }
            }
        }
        problems
    }
}

// ----- The reader on small inputs -----

mod reader {
    use super::*;

    fn roots(src: &str, depth: usize) -> Vec<String> {
        scan_file(src, depth)
            .unwrap()
            .roots
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn plain_paths_in_use_and_in_expressions() {
        let src = "use crate::config::Config;\npub use crate::db;\nfn f() { crate::report::totals(); let x: crate::Error = todo!(); }\n";
        assert_eq!(roots(src, 1), ["config", "db", "report", "Error"]);
        let scan = scan_file(src, 1).unwrap();
        assert_eq!(
            scan.roots.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
            [1, 2, 3, 3]
        );
    }

    #[test]
    fn groups_and_nested_braces() {
        assert_eq!(
            roots(
                "use crate::{a, b::c, d::{e, f::{g, h}}, self, {i, j::k}};",
                1
            ),
            ["a", "b", "d", "i", "j"]
        );
        assert_eq!(roots("use crate::{x as y, z::*};", 1), ["x", "z"]);
        assert_eq!(roots("use crate::*;", 1), ["*"]);
    }

    #[test]
    fn serde_paths_in_attribute_strings_are_paths() {
        let src = "#[derive(Deserialize)]\nstruct S {\n    #[serde(deserialize_with = \"crate::units::size\", default)]\n    a: u64,\n    #[doc = \"crate::not_a_path\"]\n    #[serde(with = \"super::durations\")]\n    b: u64,\n}\n";
        assert_eq!(roots(src, 1), ["units", "durations"]);
        assert_eq!(scan_file(src, 1).unwrap().roots[0].1, 3);
        assert!(roots(src, 2).contains(&"units".to_string()));
        assert!(!roots(src, 2).contains(&"durations".to_string()));
    }

    #[test]
    fn comments_strings_and_chars_are_not_paths() {
        let src = r##"
            // use crate::line_comment;
            /// [`crate::doc_comment`]
            //! crate::inner_doc
            /* crate::block /* crate::nested */ crate::still_comment */
            const A: &str = "crate::string \" crate::escaped";
            const B: &str = r#"crate::raw " crate::raw_inner"#;
            const C: &[u8] = br"crate::raw_bytes";
            const D: char = '"'; const E: char = '\''; const F: u8 = b'{';
            fn g<'a>(x: &'a str) -> &'a str { 'outer: loop { break 'outer; } crate::real::f(x) }
        "##;
        assert_eq!(roots(src, 1), ["real"]);
    }

    #[test]
    fn cfg_test_code_is_left_out() {
        let src = "
            use crate::kept;
            #[cfg(test)]
            mod tests { use crate::in_tests; fn f() { crate::also_in_tests(); } }
            #[cfg(test)]
            use crate::test_use;
            #[cfg(test)]
            #[allow(dead_code)]
            fn helper() -> [u8; 2] { crate::in_helper::f() }
            #[cfg(all(test, unix))]
            const X: u8 = crate::in_all::X;
            #[cfg(not(test))]
            use crate::not_test;
            #[cfg(unix)]
            use crate::unix_only;
            #[cfg(any(test, feature = \"x\"))]
            use crate::maybe;
            struct S { #[cfg(test)] a: crate::in_field::A, b: crate::field::B }
            fn h() { #[cfg(test)] crate::in_statement(); crate::after_statement(); }
            use crate::last;
        ";
        assert_eq!(
            roots(src, 1),
            [
                "kept",
                "not_test",
                "unix_only",
                "maybe",
                "field",
                "after_statement",
                "last"
            ]
        );
    }

    #[test]
    fn a_test_only_module_file_is_not_followed() {
        let scan = scan_file(
            "mod a;\npub mod b;\n#[cfg(test)]\nmod tests;\nmod inline { mod c; }\n",
            1,
        )
        .unwrap();
        assert_eq!(
            scan.children,
            [
                (vec![], "a".to_string()),
                (vec![], "b".to_string()),
                (vec!["inline".to_string()], "c".to_string())
            ]
        );
        assert_eq!(
            scan_file("#![cfg(test)]\nuse crate::x;\n", 2).unwrap(),
            FileScan::default()
        );
    }

    #[test]
    fn super_leaves_the_module_only_from_its_top() {
        // In src/refresh/live.rs (depth 2), super:: is refresh itself.
        assert!(roots("use super::settings::Settings;", 2).is_empty());
        assert_eq!(roots("use super::super::config::Config;", 2), ["config"]);
        // In src/config.rs (depth 1), super:: is the crate root.
        assert_eq!(roots("use super::{db, yaml::Key};", 1), ["db", "yaml"]);
        // An inline module adds a level.
        assert!(roots("mod tls { use super::TlsMode; }", 1).is_empty());
        assert_eq!(
            roots("mod tls { use super::super::secret::Secret; }", 1),
            ["secret"]
        );
        // $crate in a macro is the crate.
        assert_eq!(
            roots("macro_rules! m { () => { $crate::units::x() } }", 1),
            ["units"]
        );
    }

    #[test]
    fn the_root_maps_reexports_to_modules() {
        let root = scan_root(
            "//! doc\npub mod a;\nmod b;\n#[cfg(test)]\nmod t;\npub use a::{Error, Result as R};\npub use b::c::self_named;\npub use crate::b::{self};\nfn helper() {}\n",
        )
        .unwrap();
        assert_eq!(
            root.modules,
            ["a", "b"].map(String::from).into_iter().collect()
        );
        assert_eq!(root.reexports.get("Error").map(String::as_str), Some("a"));
        assert_eq!(root.reexports.get("R").map(String::as_str), Some("a"));
        assert_eq!(
            root.reexports.get("self_named").map(String::as_str),
            Some("b")
        );
        assert_eq!(root.reexports.get("b").map(String::as_str), Some("b"));
        assert!(root.items.contains("helper"));
    }

    #[test]
    fn cycles_are_named_with_a_loop() {
        let mut graph = ModuleGraph::default();
        for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")] {
            graph.modules.insert(from.into());
            graph.modules.insert(to.into());
            graph.arrows.entry(from.into()).or_default().insert(
                to.into(),
                Seen {
                    file: format!("src/{from}.rs"),
                    line: 1,
                    paths: 1,
                },
            );
        }
        let cycles = graph.cycles();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert!(
            cycles[0].starts_with("cycle of 3 modules [a, b, c], e.g. a -> b -> c -> a;"),
            "{}",
            cycles[0]
        );
        assert!(
            cycles[0].contains("    c -> a (src/c.rs:1)"),
            "{}",
            cycles[0]
        );
        assert!(!cycles[0].contains("-> d"), "{}", cycles[0]);
    }

    #[test]
    fn the_table_is_read_between_its_markers() {
        let readme = format!(
            "# x\nnot: a, table\n{START_MARKER}\n```text\nsecret:\ndb: secret\nconfig: db, secret\n```\n{END_MARKER}\nafter: x\n"
        );
        let table = AllowedTable::parse(&readme).unwrap();
        assert_eq!(table.allowed.len(), 3);
        assert!(table.allowed["config"].contains("db"));
        assert!(table.allowed["secret"].is_empty());

        let mut graph = ModuleGraph {
            modules: ["secret", "db", "config", "extra"]
                .map(String::from)
                .into_iter()
                .collect(),
            ..ModuleGraph::default()
        };
        graph.arrows.entry("db".into()).or_default().insert(
            "config".into(),
            Seen {
                file: "src/db.rs".into(),
                line: 7,
                paths: 2,
            },
        );
        assert_eq!(
            table.check(&graph),
            [
                "src/ has module extra, which has no line in the table",
                "arrow not allowed: db -> config (src/db.rs:7, 2 path(s))"
            ]
        );
    }

    #[test]
    fn a_bad_table_is_refused() {
        let wrap = |body: &str| format!("{START_MARKER}\n{body}\n{END_MARKER}\n");
        let problems =
            AllowedTable::parse(&wrap("a: b\nb: a\nc: c, zz\nnonsense\nc:")).unwrap_err();
        assert_eq!(
            problems,
            [
                "README.md:4: c lists itself",
                "README.md:5: `nonsense` is not `module: dep, dep, …`",
                "README.md:6: a second line for c",
                "the table itself allows a cycle among [a, b]"
            ]
        );
        assert!(AllowedTable::parse("no markers").is_err());
    }
}
