//! The only source of randomness in restage: seeds derived with HMAC-SHA256 from the secret,
//! the transform's identity (name and canonical parameters) and the input value.
//!
//! `seed = HMAC-SHA256(secret, be64(len(identity)) ‖ identity ‖ value)`: standard HMAC, so the
//! seeds can be recomputed with any HMAC implementation. It is computed here on SHA-256's raw
//! compression function with the keyed states and the identity absorbed once per binding:
//! a value then costs only its own blocks plus one block for the outer hash, and none of the
//! generic hashing layers (which our crate would compile without optimisation in tests).
//! `tests::matches_the_hmac_crate` checks it against the `hmac` crate.

use sha2::block_api::compress256;

const BLOCK: usize = 64;

/// SHA-256's initial state.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A SHA-256 computation in progress: the state after the whole blocks absorbed so far, the
/// bytes of the unfinished block, and the total length.
#[derive(Clone)]
struct Sha256State {
    state: [u32; 8],
    buffer: [u8; BLOCK],
    buffered: usize,
    length: u64,
}

impl Sha256State {
    fn new() -> Sha256State {
        Sha256State {
            state: IV,
            buffer: [0; BLOCK],
            buffered: 0,
            length: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.length += data.len() as u64;
        if self.buffered > 0 {
            let take = (BLOCK - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < BLOCK {
                return;
            }
            compress256(&mut self.state, &[self.buffer]);
            self.buffered = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            let mut whole = [0u8; BLOCK];
            whole.copy_from_slice(block);
            compress256(&mut self.state, &[whole]);
        }
        let rest = blocks.remainder();
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    fn finish(mut self) -> [u8; 32] {
        let bit_length = self.length.wrapping_mul(8);
        // The padding: 0x80, zeros, the length in bits; one block, or two when the length
        // does not fit after the buffered bytes.
        let mut tail = [[0u8; BLOCK]; 2];
        tail[0][..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        tail[0][self.buffered] = 0x80;
        let blocks = if self.buffered + 1 + 8 <= BLOCK { 1 } else { 2 };
        tail[blocks - 1][BLOCK - 8..].copy_from_slice(&bit_length.to_be_bytes());
        compress256(&mut self.state, &tail[..blocks]);
        let mut digest = [0u8; 32];
        for (chunk, word) in digest.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// The run's secret, ready to key HMACs: the inner and outer states after the padded key.
/// Its Debug does not show it.
#[derive(Clone)]
pub struct Key {
    inner: Sha256State,
    outer: Sha256State,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        let mut block = [0u8; BLOCK];
        if secret.len() > BLOCK {
            let mut h = Sha256State::new();
            h.update(secret);
            block[..32].copy_from_slice(&h.finish());
        } else {
            block[..secret.len()].copy_from_slice(secret);
        }
        let mut inner = Sha256State::new();
        let mut outer = Sha256State::new();
        inner.update(&block.map(|b| b ^ 0x36));
        outer.update(&block.map(|b| b ^ 0x5c));
        Key { inner, outer }
    }

    /// A keyed state with `domain` (the transform's identity) already absorbed; per value, the
    /// cost is one HMAC over the value only.
    pub fn domain(&self, domain: &[u8]) -> Domain {
        let mut inner = self.inner.clone();
        inner.update(&(domain.len() as u64).to_be_bytes());
        inner.update(domain);
        Domain {
            inner,
            outer: self.outer.clone(),
        }
    }
}

/// A key bound to one transform identity.
#[derive(Clone)]
pub struct Domain {
    inner: Sha256State,
    outer: Sha256State,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Domain(***)")
    }
}

impl Domain {
    /// The 32-byte seed for `value`.
    pub fn seed(&self, value: &[u8]) -> [u8; 32] {
        self.seed_parts(&[], value)
    }

    /// The seed for `value` under a counter (`unique` retries): the counter is a fixed-width
    /// prefix, so (counter, value) pairs never alias each other.
    pub fn seed_with_counter(&self, counter: u32, value: &[u8]) -> [u8; 32] {
        self.seed_parts(&counter.to_be_bytes(), value)
    }

    fn seed_parts(&self, prefix: &[u8], value: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(prefix);
        inner.update(value);
        let inner_digest = inner.finish();
        let mut outer = self.outer.clone();
        outer.update(&inner_digest);
        outer.finish()
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

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
        assert_ne!(da.seed(b"x"), da.seed_with_counter(1, b"x"));
    }

    /// HMAC-SHA256(secret, be64(len(domain)) ‖ domain ‖ prefix ‖ value) with the hmac crate.
    fn reference(secret: &[u8], domain: &[u8], prefix: &[u8], value: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
        mac.update(&(domain.len() as u64).to_be_bytes());
        mac.update(domain);
        mac.update(prefix);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn matches_the_hmac_crate() {
        // Lengths around every block boundary, for the key, the identity and the value.
        let lengths = [
            0usize, 1, 7, 8, 47, 48, 55, 56, 63, 64, 65, 119, 120, 128, 200,
        ];
        for &key_len in &[0usize, 1, 32, 63, 64, 65, 100] {
            let secret: Vec<u8> = (0..key_len).map(|i| (i * 7 + 1) as u8).collect();
            let key = Key::new(&secret);
            for &domain_len in &lengths {
                let identity: Vec<u8> = (0..domain_len).map(|i| (i * 13 + 5) as u8).collect();
                let domain = key.domain(&identity);
                for &value_len in &lengths {
                    let value: Vec<u8> = (0..value_len).map(|i| (i * 31 + 11) as u8).collect();
                    assert_eq!(
                        domain.seed(&value),
                        reference(&secret, &identity, &[], &value),
                        "key {key_len}, domain {domain_len}, value {value_len}"
                    );
                    assert_eq!(
                        domain.seed_with_counter(9, &value),
                        reference(&secret, &identity, &9u32.to_be_bytes(), &value)
                    );
                }
            }
        }
    }
}
