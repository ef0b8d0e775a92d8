//! Secret values and redacted connection strings.
//!
//! Everything that can hold a password or key passes through these types, so that
//! `Debug`, `Display`, logs, reports and panic messages can only ever show the redacted form.

use std::fmt;

/// A secret string (the pseudonym key, a resolved `cmd:` output, a password).
/// Its `Debug` and `Display` never show the content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are few and greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Redacts the password of a connection string, parsed as libpq parses it: a URL
/// (`postgresql://user:pw@host/db?password=pw`, also `redis://:pw@host`) or a key=value string
/// (`host=h password='a b'`). What can hold a secret is replaced by `***`: the URL's password,
/// and the values of `password`, `sslpassword`, `options` (it can set anything) and of keys
/// that name a secret or token, in the query or the key=value pairs (keys compared after
/// percent-decoding). A URL whose `@` cannot be placed ([`UrlParts::ambiguity`]: a password
/// holding an unencoded `@` or `/`) shows no part of its authority or path, only
/// `scheme://***`; a key=value string that does not parse shows nothing of itself.
pub fn redact_url(url: &str) -> String {
    let trimmed = url.trim();
    match UrlParts::split(trimmed) {
        Some(parts) => parts.redacted(),
        None => redact_key_value(trimmed),
    }
}

/// A URL for messages: [`redact_url`] when it is one (`scheme://…`); otherwise nothing of
/// it. A value that is not a URL may be a bare secret (a `cmd:` that printed the password
/// instead of the URL), which redaction cannot recognise.
pub fn shown_url(url: &str) -> String {
    if url.contains("://") {
        redact_url(url)
    } else {
        "(not a URL; not shown, it may be a secret)".to_string()
    }
}

/// A URL cut where libpq cuts it (`conninfo_uri_parse_options`): the user information is
/// what precedes the first `@` met before any `/`; the host list ends at the first `/` or
/// `?` after it; then the path (the database) and the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `postgresql`, `redis`, …
    pub scheme: &'a str,
    /// `user:password`, when an `@` comes before any `/`.
    pub userinfo: Option<&'a str>,
    /// `host[:port][,host[:port]…]`.
    pub hosts: &'a str,
    /// What follows the `/` after the hosts, up to `?`.
    pub path: Option<&'a str>,
    /// What follows the `?`.
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// The parts of `url`, or None when it has no `scheme://`.
    pub fn split(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        let (userinfo, after) = match rest.find(['@', '/']) {
            Some(at) if rest.as_bytes()[at] == b'@' => (Some(&rest[..at]), &rest[at + 1..]),
            _ => (None, rest),
        };
        let hosts_end = after.find(['/', '?']).unwrap_or(after.len());
        let hosts = &after[..hosts_end];
        let tail = &after[hosts_end..];
        let (path, query) = match tail.strip_prefix('/') {
            Some(p) => match p.split_once('?') {
                Some((path, query)) => (Some(path), Some(query)),
                None => (Some(p), None),
            },
            None => (None, tail.strip_prefix('?')),
        };
        Some(UrlParts {
            scheme,
            userinfo,
            hosts,
            path,
            query,
        })
    }

    /// Why the URL's `@` cannot be placed, when it cannot: an `@` in the host part, or after
    /// it. libpq takes the first `@` before any `/` as the end of the user and password, so
    /// a password holding an unencoded `@` leaves the rest of itself in the host part
    /// (`user:Pw0rd@QzX81kLmZ@host` names the host `QzX81kLmZ@host`), and one holding a `/`
    /// leaves itself in the host, port and path. Either way a piece of the password would be
    /// shown as a host or a database name.
    pub fn ambiguity(&self) -> Option<&'static str> {
        if self.hosts.contains('@') {
            Some(
                "its host part holds an `@` (a user name or password with `@` in it must write it as %40)",
            )
        } else if self.path.is_some_and(|p| p.contains('@'))
            || self.query.is_some_and(|q| q.contains('@'))
        {
            Some(
                "it holds an `@` after the host (a password with `/` in it must write it as %2F, an `@` in the database name or a parameter as %40)",
            )
        } else {
            None
        }
    }

    /// The URL with its secrets replaced by `***` (see [`redact_url`]).
    pub fn redacted(&self) -> String {
        if self.ambiguity().is_some() {
            return format!("{}://***", self.scheme);
        }
        let mut out = format!("{}://", self.scheme);
        if let Some(userinfo) = self.userinfo {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
        }
        out.push_str(self.hosts);
        if let Some(path) = self.path {
            out.push('/');
            out.push_str(path);
        }
        if let Some(query) = self.query {
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_key(&percent_decode(k)) => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        out
    }
}

/// `%XX` decoded (invalid escapes kept as written), for comparing keys.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True for the connection parameters whose value is not shown: passwords, `options` (it
/// can set any server setting, a secret-holding one included), and any key that names a
/// secret, a token or a password.
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key == "options"
        || key.contains("password")
        || key.contains("passwd")
        || key == "pwd"
        || key.contains("secret")
        || key.contains("token")
}

/// Splits a libpq key=value string exactly as `conninfo_parse` does: a key runs to `=` or
/// whitespace (whitespace may surround the `=`); a value is either single-quoted, or runs
/// to whitespace, and in both a backslash takes the next character as it is. None when libpq
/// would refuse it (a key without `=`, an unterminated quote).
pub fn parse_key_value(s: &str) -> Option<Vec<(String, String)>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut pairs = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            return Some(pairs);
        }
        let mut key = String::new();
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            key.push(chars[i]);
            i += 1;
        }
        skip_ws(&mut i);
        if chars.get(i) != Some(&'=') {
            return None;
        }
        i += 1;
        skip_ws(&mut i);
        let mut value = String::new();
        if chars.get(i) == Some(&'\'') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('\\') => {
                        if let Some(c) = chars.get(i + 1) {
                            value.push(*c);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    if let Some(next) = chars.get(i + 1) {
                        value.push(*next);
                    }
                    i += 2;
                } else {
                    value.push(c);
                    i += 1;
                }
            }
        }
        pairs.push((key, value));
    }
}

/// A key=value connection string with its secret values replaced by `***`, as libpq reads
/// it (see [`parse_key_value`]); one that does not parse shows nothing of itself.
fn redact_key_value(s: &str) -> String {
    let Some(pairs) = parse_key_value(s) else {
        return "(a connection string that does not parse; not shown, it may hold a secret)"
            .to_string();
    };
    pairs
        .iter()
        .map(|(key, value)| {
            if is_secret_key(key) {
                format!("{key}=***")
            } else if value.is_empty()
                || value.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\')
            {
                format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                )
            } else {
                format!("{key}={value}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Redacts the connection strings inside free text (a child process's stderr, a server's
/// message): every `scheme://…` up to whitespace or a quote goes through [`redact_url`], and
/// every `password=…` (or another secret key, see [`redact_url`]) has its value, quoted or
/// not, replaced by `***`.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let scheme_start = rest[..found]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map(|p| p + 1)
            .unwrap_or(0);
        let end = rest[found..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .map(|p| found + p)
            .unwrap_or(rest.len());
        out.push_str(&redact_pairs_in_text(&rest[..scheme_start]));
        if scheme_start == found {
            // `://` without a scheme: not a URL, but what follows may still be one's tail.
            out.push_str(&format!("://{}", "***"));
        } else {
            out.push_str(&redact_url(&rest[scheme_start..end]));
        }
        rest = &rest[end..];
    }
    out.push_str(&redact_pairs_in_text(rest));
    out
}

/// The `key=value` pairs of secret keys in free text, with their values replaced.
fn redact_pairs_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let word_start = (c.is_ascii_alphabetic() || c == '_')
            && (i == 0 || !(chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_'));
        if !word_start {
            out.push(c);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        let word: String = chars[i..j].iter().collect();
        let mut k = j;
        while k < chars.len() && chars[k] == ' ' {
            k += 1;
        }
        if !is_secret_key(&word) || chars.get(k) != Some(&'=') {
            out.push_str(&word);
            i = j;
            continue;
        }
        k += 1;
        while k < chars.len() && chars[k] == ' ' {
            k += 1;
        }
        // The value: quoted with backslash escapes, or up to whitespace.
        if chars.get(k) == Some(&'\'') {
            k += 1;
            while k < chars.len() && chars[k] != '\'' {
                k += if chars[k] == '\\' { 2 } else { 1 };
            }
            k = (k + 1).min(chars.len());
        } else {
            while k < chars.len() && !chars[k].is_whitespace() {
                k += if chars[k] == '\\' { 2 } else { 1 };
            }
            k = k.min(chars.len());
        }
        out.push_str(&word);
        out.push_str("=***");
        i = k;
    }
    out
}

/// Prints panics (a bug) through [`redact_text`]: a message built from a connection string
/// or from a server's words shows no password. Replaces the default hook, which prints the
/// message as it is; a backtrace (`RUST_BACKTRACE=1`) holds code locations only.
pub fn redact_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        crate::output::errln!(
            "restage: internal error (a bug, please report it){at}: {}",
            redact_text(&payload)
        );
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            crate::output::errln!("{backtrace}");
        }
    }));
}

/// Removes every occurrence of the given secrets from a message. The last line of defence for
/// text that comes from elsewhere (a child process's stderr, a server error echoing input).
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for secret in secrets {
        if secret.len() >= 3 {
            out = out.replace(secret, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redacts_url_password() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.internal:5432/prod?sslmode=require"),
            "postgres://app:***@db.internal:5432/prod?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://u@h/db?password=pw&sslmode=disable"),
            "postgresql://u@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

    /// Issue 11: `user:Pw0rd@QzX81kLmZ@host` — libpq ends the password at the first `@`, so
    /// the rest of it sits in the host part; nothing of the authority is shown.
    #[test]
    fn a_password_with_an_unencoded_at_sign_shows_no_part_of_the_authority() {
        for url in [
            "postgresql://user:Pw0rd@QzX81kLmZ@host/db",
            "postgresql://user:Pw0rd@QzX81kLmZ@host:5432/db?sslmode=require",
            "postgres://u:p@ss@h/db",
            "redis://:Pw0rd@QzX81kLmZ@127.0.0.1:6379/0",
        ] {
            let shown = redact_url(url);
            assert!(shown.ends_with("://***"), "{url} → {shown}");
            for piece in ["Pw0rd", "QzX81kLmZ", "ss@h"] {
                assert!(!shown.contains(piece), "{url} → {shown}");
            }
            assert!(UrlParts::split(url).unwrap().ambiguity().is_some());
        }
        // Encoded, it is an ordinary password.
        assert_eq!(
            redact_url("postgresql://user:Pw0rd%40QzX81kLmZ@host/db"),
            "postgresql://user:***@host/db"
        );
    }

    /// A `/` in a password: libpq finds no `@` before it, so the password would be read as
    /// host, port and database; shown as nothing.
    #[test]
    fn a_password_with_an_unencoded_slash_shows_nothing() {
        for url in [
            "postgres://u:pa/ss@h:notaport/db?sslmode=require",
            "postgres://u:12/34@h/db",
            "postgres://h/db@x",
            "postgres://h/db?application_name=a@b",
        ] {
            assert_eq!(redact_url(url), "postgres://***", "{url}");
        }
    }

    #[test]
    fn url_parts_follow_libpq() {
        let p = UrlParts::split("postgresql://u:p?w@h1:5432,h2/db?sslmode=require").unwrap();
        assert_eq!(p.userinfo, Some("u:p?w"));
        assert_eq!(p.hosts, "h1:5432,h2");
        assert_eq!(p.path, Some("db"));
        assert_eq!(p.query, Some("sslmode=require"));
        assert_eq!(p.ambiguity(), None);
        assert_eq!(
            p.redacted(),
            "postgresql://u:***@h1:5432,h2/db?sslmode=require"
        );
        let p = UrlParts::split("postgres://h?user=u").unwrap();
        assert_eq!((p.userinfo, p.hosts, p.path), (None, "h", None));
        assert_eq!(p.query, Some("user=u"));
        assert_eq!(UrlParts::split("host=h"), None);
    }

    #[test]
    fn query_secrets_are_redacted_after_percent_decoding_their_keys() {
        assert_eq!(
            redact_url(
                "postgres://u@h/db?pass%77ord=Pw1&PASSWORD=Pw2&sslpassword=Pw3&options=-c%20x%3Dy&application_name=app"
            ),
            "postgres://u@h/db?pass%77ord=***&PASSWORD=***&sslpassword=***&options=***&application_name=app"
        );
    }

    #[test]
    fn bare_values_are_not_shown() {
        assert_eq!(
            shown_url("s3cr3t-token"),
            "(not a URL; not shown, it may be a secret)"
        );
        assert_eq!(shown_url("redis://:pw@h/0"), "redis://:***@h/0");
    }

    #[test]
    fn redacts_key_value_password() {
        assert_eq!(
            redact_url("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(
            redact_url("host=h password = 'a b\\' c' dbname=d"),
            "host=h password=*** dbname=d"
        );
        // libpq unescapes unquoted values too: `a\ b` is one value.
        assert_eq!(
            redact_url("host=h password=Pw0\\ rd dbname=d"),
            "host=h password=*** dbname=d"
        );
        assert_eq!(
            redact_url("host=h options='-c app.token=Tk1' application_name='my app'"),
            "host=h options=*** application_name='my app'"
        );
        // What libpq refuses shows nothing of itself: it may be a bare password.
        for bad in [
            "host=h password='Pw0rd unterminated",
            "Pw0rd-bare-secret",
            "host h",
        ] {
            let shown = redact_url(bad);
            assert!(
                shown.starts_with("(a connection string that does not parse"),
                "{bad} → {shown}"
            );
            assert!(!shown.contains("Pw0rd"), "{shown}");
        }
        assert_eq!(
            parse_key_value("a=1 b = '2 3' c=4\\ 5 d=''"),
            Some(vec![
                ("a".into(), "1".into()),
                ("b".into(), "2 3".into()),
                ("c".into(), "4 5".into()),
                ("d".into(), "".into()),
            ])
        );
    }

    #[test]
    fn connection_strings_inside_text_are_redacted() {
        let text = "pg_dump: error: connection to \"postgresql://u:Pw1@h/db\" failed; \
                    tried redis://:Pw2@r:6379/0, postgres://u:Pw3@Pw4@h/db and host=h password=Pw5 \
                    password = 'Pw6 x' PASSWORD=Pw7, but not passwords or password_hash";
        let shown = redact_text(text);
        for s in ["Pw1", "Pw2", "Pw3", "Pw4", "Pw5", "Pw6", "Pw7"] {
            assert!(!shown.contains(s), "{s} in {shown}");
        }
        assert!(shown.contains("\"postgresql://u:***@h/db\""), "{shown}");
        assert!(shown.contains("redis://:***@r:6379/0,"), "{shown}");
        assert!(shown.contains("not passwords or password_hash"), "{shown}");
        assert_eq!(redact_text("nothing here"), "nothing here");
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(
            scrub("auth failed for hunter2", &["hunter2"]),
            "auth failed for ***"
        );
    }
}
