//! Encryption at rest of archives, with `age`.
//!
//! Every archive gets a key of its own (an x25519 identity drawn for the run): the schema and
//! every part are encrypted to it (cheap, streamed), and the key itself is written to
//! `key.age`, encrypted to the recipients of `dump.encryption.recipients` (age public keys)
//! or to `dump.encryption.passphrase` (scrypt: once per archive, not once per part). A
//! restore opens `key.age` with `dump.encryption.identity` (an age identity file's text) or
//! the passphrase, then every file with the archive's key. The manifest itself is not
//! encrypted: it names tables, columns and counts, never a value.

use std::io::{Read, Write};

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// What a dump encrypts the archive's key to.
pub enum Sealing {
    Recipients(Vec<x25519::Recipient>),
    Passphrase(Secret),
}

/// What a restore opens the archive's key with.
pub enum Opening {
    Identities(Vec<x25519::Identity>),
    Passphrase(Secret),
}

fn section(config: &Config) -> Option<&crate::config::DumpEncryptionConfig> {
    config
        .file
        .dump
        .as_ref()
        .and_then(|d| d.encryption.as_ref())
}

fn resolve(config: &Config, raw: &crate::config::RawValue, key: &str) -> Result<Secret> {
    Ok(raw.resolve(
        &format!("dump.encryption.{key}"),
        &config.locate(&["dump", "encryption", key]),
    )?)
}

/// `dump.encryption` for a dump: None when the section does not ask for encryption.
pub fn sealing(config: &Config) -> Result<Option<Sealing>> {
    let Some(enc) = section(config) else {
        return Ok(None);
    };
    match (&enc.recipients[..], &enc.passphrase) {
        ([], None) => Ok(None),
        ([_, ..], Some(_)) => Err(Error::Usage(
            "dump.encryption: recipients or a passphrase, not both (age cannot mix them in one file) (nothing was changed)"
                .into(),
        )),
        ([], Some(raw)) => {
            let pass = resolve(config, raw, "passphrase")?;
            if pass.expose().len() < 12 {
                return Err(Error::Usage(
                    "dump.encryption.passphrase: at least 12 characters (nothing was changed)"
                        .into(),
                ));
            }
            Ok(Some(Sealing::Passphrase(pass)))
        }
        (recipients, None) => {
            let mut parsed = Vec::new();
            for (i, r) in recipients.iter().enumerate() {
                parsed.push(r.trim().parse::<x25519::Recipient>().map_err(|e| {
                    Error::Usage(format!(
                        "dump.encryption.recipients[{i}]: not an age public key (age1…): {e} (nothing was changed)"
                    ))
                })?);
            }
            Ok(Some(Sealing::Recipients(parsed)))
        }
    }
}

/// `dump.encryption` for a restore: the identity or passphrase, when given.
pub fn opening(config: &Config) -> Result<Option<Opening>> {
    let Some(enc) = section(config) else {
        return Ok(None);
    };
    if let Some(raw) = &enc.identity {
        let text = resolve(config, raw, "identity")?;
        let mut identities = Vec::new();
        for line in text.expose().lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Never the line in the message: it is the secret key.
            identities.push(line.parse::<x25519::Identity>().map_err(|_| {
                Error::Usage(
                    "dump.encryption.identity: a line is not an age secret key (AGE-SECRET-KEY-1…) (nothing was changed)"
                        .into(),
                )
            })?);
        }
        if identities.is_empty() {
            return Err(Error::Usage(
                "dump.encryption.identity: holds no age secret key (nothing was changed)".into(),
            ));
        }
        return Ok(Some(Opening::Identities(identities)));
    }
    match &enc.passphrase {
        Some(raw) => Ok(Some(Opening::Passphrase(resolve(
            config,
            raw,
            "passphrase",
        )?))),
        None => Ok(None),
    }
}

/// The key of one archive.
pub struct ArchiveKey(x25519::Identity);

impl ArchiveKey {
    pub fn generate() -> ArchiveKey {
        ArchiveKey(x25519::Identity::generate())
    }

    /// `key.age`: this key, encrypted as `sealing` says.
    pub fn sealed(&self, sealing: &Sealing) -> Result<Vec<u8>> {
        let encryptor = match sealing {
            Sealing::Recipients(recipients) => {
                age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| Error::Runtime(format!("encrypting the archive's key: {e}")))?
            }
            Sealing::Passphrase(pass) => {
                age::Encryptor::with_user_passphrase(SecretString::from(pass.expose().to_string()))
            }
        };
        let mut out = Vec::new();
        let written = (|| {
            let mut writer = encryptor.wrap_output(&mut out)?;
            writer.write_all(self.0.to_string().expose_secret().as_bytes())?;
            writer.finish().map(drop)
        })();
        written.map_err(|e| Error::io("encrypting the archive's key", e))?;
        Ok(out)
    }

    /// Opens `key.age` with what the restore was given; a wrong key is a usage error.
    pub fn open(sealed: &[u8], opening: &Opening, archive: &str) -> Result<ArchiveKey> {
        let wrong = || {
            Error::Usage(format!(
                "{archive}: the archive is encrypted and the key given does not open it (wrong dump.encryption.identity or passphrase) (nothing was changed)"
            ))
        };
        let decryptor = age::Decryptor::new(sealed)
            .map_err(|e| Error::Runtime(format!("{archive}: key.age is not an age file: {e}")))?;
        let scrypt = decryptor.is_scrypt();
        let reader = match opening {
            Opening::Passphrase(_) if !scrypt => return Err(wrong()),
            Opening::Identities(_) if scrypt => return Err(wrong()),
            Opening::Passphrase(pass) => {
                let identity =
                    age::scrypt::Identity::new(SecretString::from(pass.expose().to_string()));
                decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
            }
            Opening::Identities(ids) => {
                decryptor.decrypt(ids.iter().map(|i| i as &dyn age::Identity))
            }
        }
        .map_err(|_| wrong())?;
        let mut text = String::new();
        let mut reader = reader;
        reader
            .read_to_string(&mut text)
            .map_err(|e| Error::Runtime(format!("{archive}: key.age cannot be read: {e}")))?;
        let key = text
            .trim()
            .parse::<x25519::Identity>()
            .map_err(|_| Error::Runtime(format!("{archive}: key.age holds no age key")))?;
        Ok(ArchiveKey(key))
    }

    /// A writer that encrypts to this key into `w` (finish it).
    pub fn wrap<W: Write>(&self, w: W) -> std::io::Result<age::stream::StreamWriter<W>> {
        let recipient = self.0.to_public();
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(std::io::Error::other)?
            .wrap_output(w)
    }

    /// A reader of what was encrypted to this key.
    pub fn unwrap<R: Read>(&self, r: R) -> std::io::Result<age::stream::StreamReader<R>> {
        age::Decryptor::new(r)
            .map_err(std::io::Error::other)?
            .decrypt(std::iter::once(&self.0 as &dyn age::Identity))
            .map_err(std::io::Error::other)
    }
}

/// Where a part or the schema is written: the hashed file, through the archive's key or not.
pub enum Sink<W: Write> {
    Plain(W),
    Sealed(age::stream::StreamWriter<W>),
}

impl<W: Write> Sink<W> {
    pub fn new(key: Option<&ArchiveKey>, w: W) -> std::io::Result<Sink<W>> {
        Ok(match key {
            Some(key) => Sink::Sealed(key.wrap(w)?),
            None => Sink::Plain(w),
        })
    }

    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Sealed(s) => s.finish(),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Sealed(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Sealed(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_opens_only_with_its_recipients_identity() {
        let mine = x25519::Identity::generate();
        let other = x25519::Identity::generate();
        let key = ArchiveKey::generate();
        let sealed = key
            .sealed(&Sealing::Recipients(vec![mine.to_public()]))
            .expect("sealed");
        let opened = ArchiveKey::open(&sealed, &Opening::Identities(vec![mine]), "a")
            .expect("opens with the identity");
        let e = ArchiveKey::open(&sealed, &Opening::Identities(vec![other]), "a")
            .err()
            .expect("not with another");
        assert!(e.to_string().contains("does not open it"), "{e}");
        let e = ArchiveKey::open(
            &sealed,
            &Opening::Passphrase(Secret::new("x".repeat(12))),
            "a",
        )
        .err()
        .expect("not with a passphrase");
        assert_eq!(e.exit_code(), 2);
        // Data encrypted to the archive's key reads back with the opened key only.
        let mut sink = Sink::new(Some(&key), Vec::new()).expect("sink");
        sink.write_all(b"1\tsecret row\n").expect("write");
        let data = sink.finish().expect("finish");
        assert!(!data.windows(6).any(|w| w == b"secret"));
        let mut back = String::new();
        opened
            .unwrap(&data[..])
            .expect("unwrap")
            .read_to_string(&mut back)
            .expect("read");
        assert_eq!(back, "1\tsecret row\n");
        assert!(ArchiveKey::generate().unwrap(&data[..]).is_err());
    }
}
