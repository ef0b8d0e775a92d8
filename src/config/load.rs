//! Reading the file: [`Config::load`] reads and type-checks it (no environment, no network,
//! no commands), then runs the pure checks of `check.rs`; and the helpers that point an error
//! at a key of the file.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, ConfigFile};
use crate::yaml::{self, KeyIndex, Location};

impl Config {
    /// Reads and type-checks `path`. A missing file is allowed (`exists == false`): commands
    /// that need a section then say so.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match yaml::read_file(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config {
                    path: path.to_path_buf(),
                    exists: false,
                    ..Config::default()
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Config::from_text(&text, path)
    }

    pub fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: ConfigFile = yaml::from_str(text, path)?;
        let config = Config {
            path: path.to_path_buf(),
            index: KeyIndex::parse(text, path),
            file,
            exists: true,
        };
        config.check()?;
        Ok(config)
    }

    /// The location of the key at `path` in this file.
    pub fn locate(&self, path: &[&str]) -> Location {
        if self.exists {
            self.index.locate(path)
        } else {
            Location {
                file: self.path.clone(),
                line: 1,
                column: 1,
            }
        }
    }

    pub fn value_error(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            location: self.locate(path),
            key: path.join("."),
            message: message.into(),
        }
    }

    pub(super) fn missing(&self, section: &'static str, command: &'static str) -> ConfigError {
        ConfigError::MissingSection {
            file: self.path.clone(),
            section,
            command,
        }
    }

    /// The directory relative paths in the file are resolved against.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, Path::new("restage.yaml"))
    }

    #[test]
    fn unknown_key_suggests() {
        let err = load("source:\n  url: x\ntraget:\n  url: y\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "restage.yaml:3:1: unknown key `traget`, did you mean `target`?"
        );
    }
}
