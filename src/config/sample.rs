//! The size-limit and orphan keys of the `sample:` section as written: `max_storage` (a plain
//! size, or `{ limit, include_indexes, tolerance }`), `max_storage_policy`, and `orphans`
//! (also per foreign key). The rest of the section is in `file.rs`.

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use crate::units::{Percent, Size};

/// `sample.max_storage`: `2GiB`, or `{ limit: 2GiB, include_indexes: true, tolerance: 5% }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxStorageConfig {
    /// The cap on what staging holds of the copied tables.
    pub limit: Size,
    /// Count the tables' indexes too (what the staging disk holds), not only heap + TOAST.
    pub include_indexes: bool,
    /// How far over `limit` the restored data may come out before `max_storage_policy`
    /// applies (default 0: never over).
    pub tolerance: Percent,
}

/// The long form, parsed with its own field names and unknown-key errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxStorageLong {
    limit: Size,
    #[serde(default)]
    include_indexes: bool,
    #[serde(default)]
    tolerance: Percent,
}

impl<'de> Deserialize<'de> for MaxStorageConfig {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = MaxStorageConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a size (2GiB) or { limit: 2GiB, include_indexes: true, tolerance: 5% }",
                )
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(MaxStorageConfig::plain(Size(n)))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n)
                    .map(|n| MaxStorageConfig::plain(Size(n)))
                    .map_err(|_| E::custom("a size cannot be negative"))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse::<Size>()
                    .map(MaxStorageConfig::plain)
                    .map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let long = MaxStorageLong::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MaxStorageConfig {
                    limit: long.limit,
                    include_indexes: long.include_indexes,
                    tolerance: long.tolerance,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

impl MaxStorageConfig {
    /// The plain form: heap + TOAST, no tolerance.
    pub fn plain(limit: Size) -> MaxStorageConfig {
        MaxStorageConfig {
            limit,
            include_indexes: false,
            tolerance: Percent(0.0),
        }
    }
}

/// What a refresh does when the data it restored is over `max_storage` (beyond its tolerance)
/// although the plan fitted: the estimate missed. None of them goes live silently over it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxStoragePolicy {
    /// Scale the roots down by what the load measured, and reload the sampled tables, before
    /// the swap (the report says so); stop with an error if it still does not fit.
    #[default]
    Rescale,
    /// Stop with an error (exit 1) before the swap; staging is unchanged.
    Fail,
    /// Go live anyway, with a warning in the report and the log.
    Warn,
}

impl MaxStoragePolicy {
    pub fn name(self) -> &'static str {
        match self {
            MaxStoragePolicy::Rescale => "rescale",
            MaxStoragePolicy::Fail => "fail",
            MaxStoragePolicy::Warn => "warn",
        }
    }
}

/// Rows of a following table whose references to the tables it follows are all NULL: they
/// follow nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Orphans {
    /// Sampled at the rate of the root the table follows, by the same keyed hash (the same
    /// rows every night).
    #[default]
    Sample,
    /// All kept.
    Keep,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrap {
        max_storage: MaxStorageConfig,
    }

    fn parse(yaml: &str) -> Result<MaxStorageConfig, String> {
        serde_yaml::from_str::<Wrap>(yaml)
            .map(|w| w.max_storage)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn max_storage_is_a_size_or_a_mapping() {
        assert_eq!(
            parse("max_storage: 2GiB").unwrap(),
            MaxStorageConfig::plain(Size(2 << 30))
        );
        assert_eq!(
            parse("max_storage: 1048576").unwrap(),
            MaxStorageConfig::plain(Size(1 << 20))
        );
        assert_eq!(
            parse("max_storage: { limit: 2GiB, include_indexes: true, tolerance: 5% }").unwrap(),
            MaxStorageConfig {
                limit: Size(2 << 30),
                include_indexes: true,
                tolerance: Percent(5.0),
            }
        );
        assert_eq!(
            parse("max_storage: { limit: 10MB }").unwrap(),
            MaxStorageConfig::plain(Size(10_000_000))
        );
        let err = parse("max_storage: { limit: 2GiB, include_index: true }").unwrap_err();
        assert!(err.contains("unknown field `include_index`"), "{err}");
        let err = parse("max_storage: { include_indexes: true }").unwrap_err();
        assert!(err.contains("missing field `limit`"), "{err}");
        let err = parse("max_storage: 2 parsecs").unwrap_err();
        assert!(err.contains("unknown size unit `parsecs`"), "{err}");
        let err = parse("max_storage: [1]").unwrap_err();
        assert!(err.contains("a size (2GiB) or { limit"), "{err}");
    }
}
