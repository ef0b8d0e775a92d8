//! The only source of randomness in restage: seeds derived with HMAC-SHA256 from the secret,
//! the transform's identity (name and canonical parameters) and the input value.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The run's secret, ready to key HMACs. Its Debug does not show it.
pub struct Key {
    mac: HmacSha256,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key {
            mac: <HmacSha256 as KeyInit>::new_from_slice(secret)
                .expect("HMAC accepts keys of any length"),
        }
    }

    /// A keyed state with `domain` (the transform's identity) already absorbed; clone it per
    /// value so the per-value cost is one HMAC over the value only.
    pub fn domain(&self, domain: &[u8]) -> Domain {
        let mut mac = self.mac.clone();
        mac.update(&(domain.len() as u64).to_be_bytes());
        mac.update(domain);
        Domain { mac }
    }
}

/// A key bound to one transform identity.
#[derive(Clone)]
pub struct Domain {
    mac: HmacSha256,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Domain(***)")
    }
}

impl Domain {
    /// The 32-byte seed for `value`.
    pub fn seed(&self, value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// The seed for `value` under a counter (`unique` retries): the counter is a fixed-width
    /// prefix, so (counter, value) pairs never alias each other.
    pub fn seed_with_counter(&self, counter: u32, value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&counter.to_be_bytes());
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_depend_on_secret_domain_and_value() {
        let a = Key::new(b"secret-a-0123456789");
        let b = Key::new(b"secret-b-0123456789");
        let da = a.domain(b"email");
        assert_eq!(da.seed(b"x"), a.domain(b"email").seed(b"x"));
        assert_ne!(da.seed(b"x"), da.seed(b"y"));
        assert_ne!(da.seed(b"x"), a.domain(b"name").seed(b"x"));
        assert_ne!(da.seed(b"x"), b.domain(b"email").seed(b"x"));
    }
}
