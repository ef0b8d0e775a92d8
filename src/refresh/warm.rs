//! Cache warming: stale keys removed, fresh ones written from the new staging data.
//!
//! Flushing removes only the configured key prefixes, with SCAN + UNLINK (never FLUSHALL or
//! FLUSHDB: the Redis may hold other teams' keys). Warming runs each `cache.warm` query on
//! the live staging database and writes one key per row, from the key template
//! (`user:{id}`), as the row's JSON, hash fields, or one column, with an optional TTL; writes
//! are pipelined in batches.
//!
//! Redis holds no personal data after this: every value comes from the anonymized staging
//! database, and the old values under the configured prefixes are gone.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio_postgres::Client;

use crate::config::WarmConfig;
use crate::db::{self, DbError, Role};
use crate::error::{Error, Result};
use crate::secret::{Secret, redact_url, shown_url};

use super::settings::{CacheSettings, TargetSettings};

/// Commands per pipeline round trip.
const PIPELINE: usize = 1000;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WarmReport {
    pub flushed_keys: u64,
    pub written_keys: u64,
    pub seconds: f64,
    pub keys_per_second: f64,
    pub entries: Vec<WarmEntryReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WarmEntryReport {
    pub key: String,
    pub rows: u64,
}

/// How a row becomes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ValueKind {
    Json,
    Hash,
    Column(String),
}

fn value_kind(v: &str) -> ValueKind {
    match v {
        "json" => ValueKind::Json,
        "hash" => ValueKind::Hash,
        column => ValueKind::Column(column.to_string()),
    }
}

/// A Redis server, named without its password in every message.
pub struct Cache {
    url: Secret,
    pub display: String,
}

impl Cache {
    pub fn new(url: Secret) -> Cache {
        let display = shown_url(url.expose());
        Cache { url, display }
    }

    pub async fn connect(&self) -> Result<MultiplexedConnection> {
        let client = redis::Client::open(self.url.expose()).map_err(|e| {
            Error::Usage(format!("cache.url ({}): {}", self.display, redis_error(&e)))
        })?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| {
                Error::Runtime(format!(
                    "{}: cannot connect to Redis: {}",
                    self.display,
                    redis_error(&e)
                ))
            })?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                Error::Runtime(format!(
                    "{}: Redis does not answer PING: {}",
                    self.display,
                    redis_error(&e)
                ))
            })?;
        Ok(conn)
    }
}

/// A Redis error without anything that could echo a password.
fn redis_error(e: &redis::RedisError) -> String {
    redact_url(&e.to_string())
}

/// Escapes glob characters so a prefix matches literally in SCAN MATCH.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

/// Removes every key under each prefix (SCAN + UNLINK); returns how many. Keys are bytes to
/// Redis, and are handled as bytes here: a key that is not UTF-8 is removed like any other.
pub async fn flush(
    conn: &mut MultiplexedConnection,
    display: &str,
    prefixes: &[String],
) -> Result<u64> {
    let mut removed = 0u64;
    for prefix in prefixes {
        // The configuration check refuses it first (exit 2); never FLUSHALL by accident.
        if prefix.is_empty() {
            return Err(Error::Usage(
                "cache.flush: an empty prefix would remove every key; name the prefixes to remove"
                    .into(),
            ));
        }
        let pattern = glob_escape(prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(conn)
                .await
                .map_err(|e| {
                    Error::Runtime(format!("{display}: SCAN {prefix}*: {}", redis_error(&e)))
                })?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(conn)
                    .await
                    .map_err(|e| {
                        Error::Runtime(format!("{display}: UNLINK: {}", redis_error(&e)))
                    })?;
                removed += n;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(removed)
}

/// Fills `template` (`user:{id}`) from a row's JSON object. A missing column is an error
/// naming it; NULL becomes an empty string.
fn render_key(
    template: &str,
    row: &serde_json::Map<String, serde_json::Value>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in key template `{template}`"))?;
        let column = &after[..end];
        match row.get(column) {
            Some(v) => out.push_str(&scalar_text(v)),
            None => {
                return Err(format!(
                    "key template `{template}` uses {{{column}}}, which the query does not return"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs every warm entry against `staging` and writes its keys.
pub async fn warm(
    conn: &mut MultiplexedConnection,
    display: &str,
    staging: &Client,
    staging_server: &str,
    entries: &[WarmConfig],
) -> Result<Vec<WarmEntryReport>> {
    let mut reports = Vec::new();
    for entry in entries {
        let kind = value_kind(&entry.value);
        let ttl = entry.ttl.map(|d| d.0.as_secs().max(1));
        // row_to_json gives every column in its JSON form, whatever its type.
        let sql = format!(
            "SELECT row_to_json(q)::text FROM ({}) q",
            entry.query.trim().trim_end_matches(';')
        );
        let params: Vec<String> = vec![];
        let rows = staging.query_raw(&sql, params.iter()).await.map_err(|e| {
            DbError::new(
                staging_server,
                format!("cache.warm query for `{}`", entry.key),
                e,
            )
        })?;
        let mut rows = std::pin::pin!(rows);
        let mut pipe = redis::pipe();
        let mut queued = 0usize;
        let mut count = 0u64;
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| {
                DbError::new(
                    staging_server,
                    format!("cache.warm query for `{}`", entry.key),
                    e,
                )
            })?;
            let text: String = row.get(0);
            let serde_json::Value::Object(object) = serde_json::from_str(&text)
                .map_err(|e| Error::Runtime(format!("cache.warm `{}`: {e}", entry.key)))?
            else {
                continue;
            };
            let key = render_key(&entry.key, &object)
                .map_err(|e| Error::Usage(format!("cache.warm: {e}")))?;
            match &kind {
                ValueKind::Json => {
                    match ttl {
                        Some(t) => pipe
                            .cmd("SET")
                            .arg(&key)
                            .arg(&text)
                            .arg("EX")
                            .arg(t)
                            .ignore(),
                        None => pipe.cmd("SET").arg(&key).arg(&text).ignore(),
                    };
                }
                ValueKind::Column(column) => {
                    let value = object.get(column).ok_or_else(|| {
                        Error::Usage(format!(
                            "cache.warm `{}`: value `{column}` is not a column the query returns (use json, hash or a column name)",
                            entry.key
                        ))
                    })?;
                    let value = scalar_text(value);
                    match ttl {
                        Some(t) => pipe
                            .cmd("SET")
                            .arg(&key)
                            .arg(value)
                            .arg("EX")
                            .arg(t)
                            .ignore(),
                        None => pipe.cmd("SET").arg(&key).arg(value).ignore(),
                    };
                }
                ValueKind::Hash => {
                    // Replace, not merge: fields of the old hash must not survive.
                    pipe.cmd("DEL").arg(&key).ignore();
                    let mut hset = redis::cmd("HSET");
                    hset.arg(&key);
                    for (field, value) in &object {
                        hset.arg(field).arg(scalar_text(value));
                    }
                    pipe.add_command(hset).ignore();
                    if let Some(t) = ttl {
                        pipe.cmd("EXPIRE").arg(&key).arg(t).ignore();
                    }
                }
            }
            count += 1;
            queued += 1;
            if queued >= PIPELINE {
                run_pipe(conn, display, &mut pipe).await?;
                queued = 0;
            }
        }
        if queued > 0 {
            run_pipe(conn, display, &mut pipe).await?;
        }
        reports.push(WarmEntryReport {
            key: entry.key.clone(),
            rows: count,
        });
    }
    Ok(reports)
}

async fn run_pipe(
    conn: &mut MultiplexedConnection,
    display: &str,
    pipe: &mut redis::Pipeline,
) -> Result<()> {
    let _: () = pipe.query_async(conn).await.map_err(|e| {
        Error::Runtime(format!(
            "{display}: writing cache keys: {}",
            redis_error(&e)
        ))
    })?;
    *pipe = redis::pipe();
    Ok(())
}

/// The cache step against the live staging database (after a swap, or `restage warm`).
pub async fn flush_and_warm(target: &TargetSettings, cache: &CacheSettings) -> Result<WarmReport> {
    let live = target.live();
    // Read-only on the staging side: warming only reads it.
    let client = db::connect(&live, Role::Source).await?;
    run(
        &Cache::new(cache.url.clone()),
        &cache.flush,
        &cache.warm,
        &client,
        &live.display,
    )
    .await
}

/// Flush then warm; the whole cache step.
pub async fn run(
    cache: &Cache,
    flush_prefixes: &[String],
    entries: &[WarmConfig],
    staging: &Client,
    staging_server: &str,
) -> Result<WarmReport> {
    let started = Instant::now();
    let mut conn = cache.connect().await?;
    let flushed = flush(&mut conn, &cache.display, flush_prefixes).await?;
    let entries = warm(&mut conn, &cache.display, staging, staging_server, entries).await?;
    let written: u64 = entries.iter().map(|e| e.rows).sum();
    let seconds = started.elapsed().as_secs_f64();
    Ok(WarmReport {
        flushed_keys: flushed,
        written_keys: written,
        seconds,
        keys_per_second: if seconds > 0.0 {
            written as f64 / seconds
        } else {
            0.0
        },
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates() {
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"id": 7, "email": "a@b.c", "n": null}"#).unwrap();
        assert_eq!(render_key("user:{id}", &row).unwrap(), "user:7");
        assert_eq!(render_key("u:{id}:{email}", &row).unwrap(), "u:7:a@b.c");
        assert_eq!(render_key("x:{n}", &row).unwrap(), "x:");
        assert!(
            render_key("user:{nope}", &row)
                .unwrap_err()
                .contains("{nope}")
        );
    }

    #[test]
    fn glob_patterns_are_literal() {
        assert_eq!(glob_escape("user:"), "user:*");
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]*");
    }
}
