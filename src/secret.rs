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

/// Redacts the password of a libpq connection string, in URL form
/// (`postgres://user:pw@host/db?password=pw`) or key=value form (`host=h password=pw`),
/// and of a `redis://:pw@host` URL. Anything that looks like a credential is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let trimmed = url.trim();
    if let Some(scheme_end) = trimmed.find("://") {
        let (scheme, rest) = trimmed.split_at(scheme_end + 3);
        // Userinfo is what precedes the last '@' before the query. In a well-formed URL that
        // '@' is inside the authority, but a password pasted without percent-encoding may
        // hold a '/' (`u:pa/ss@host`): looking past the first '/' still hides all of it.
        let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
        let (main, tail) = rest.split_at(query_start);
        let main = match main.rfind('@') {
            Some(at) => {
                let (userinfo, host) = main.split_at(at);
                match userinfo.find(':') {
                    Some(colon) => format!("{}:***{}", &userinfo[..colon], host),
                    None => main.to_string(),
                }
            }
            None => main.to_string(),
        };
        return format!("{scheme}{main}{}", redact_query(tail));
    }
    redact_key_value(trimmed)
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

fn redact_query(tail: &str) -> String {
    let Some(q) = tail.find('?') else {
        return tail.to_string();
    };
    let (path, query) = tail.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}{}", parts.join("&"))
}

fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key == "password" || key == "sslpassword" || key.ends_with("secret") || key == "token"
}

/// Redacts `password=...` in a libpq key=value string, including quoted values.
fn redact_key_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Copy whitespace.
        if bytes[i].is_ascii_whitespace() {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        // Read a key up to '='.
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        // Skip spaces around '='.
        let mut j = i;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b'=' {
            out.push_str(key);
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        // Read the value: quoted with backslash escapes, or up to whitespace.
        let value_start = j;
        if j < bytes.len() && bytes[j] == b'\'' {
            j += 1;
            while j < bytes.len() && bytes[j] != b'\'' {
                if bytes[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            j = (j + 1).min(bytes.len());
        } else {
            while j < bytes.len() && !bytes[j].is_ascii_whitespace() {
                j += 1;
            }
        }
        out.push_str(key);
        out.push('=');
        if is_secret_key(key) {
            out.push_str("***");
        } else {
            out.push_str(&s[value_start..j]);
        }
        i = j;
    }
    out
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

    #[test]
    fn redacts_password_containing_at_sign() {
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn redacts_password_containing_slash() {
        assert_eq!(
            redact_url("postgres://u:pa/ss@h:notaport/db?sslmode=require"),
            "postgres://u:***@h:notaport/db?sslmode=require"
        );
        assert_eq!(redact_url("postgres://h/db@x"), "postgres://h/db@x");
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
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(
            scrub("auth failed for hunter2", &["hunter2"]),
            "auth failed for ***"
        );
    }
}
