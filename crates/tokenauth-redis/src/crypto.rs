//! Encryption at rest: XChaCha20-Poly1305 with a keyring.
//!
//! A stored value is `tokenauth1.enc.<key id>.<base64(nonce ‖ ciphertext)>`:
//! a random 192-bit nonce per value, and the id of the key that sealed it,
//! so that keys can rotate (the keyring's first key seals, every key in it
//! opens). The associated data is the Redis key name, so a value copied to
//! another key (another connection's) does not open. With
//! [`RedisStoreBuilder::plaintext`](crate::RedisStoreBuilder::plaintext) a
//! value is `tokenauth1.plain.<json>`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use tokenauth_core::store::{StoreError, StoreErrorKind};

/// The environment variable [`Keyring::from_env`] reads by default.
pub const KEY_ENV: &str = "TOKENAUTH_STORE_KEY";

const SEALED: &str = "tokenauth1.enc.";
const PLAIN: &str = "tokenauth1.plain.";
const NONCE_LEN: usize = 24;
const MAX_KEY_ID: usize = 32;

/// One 256-bit key and its id.
///
/// Its [`Debug`](fmt::Debug) shows the id only; the key bytes are zeroed
/// when it is dropped.
pub struct EncryptionKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl EncryptionKey {
    /// A key named `id` (1 to 32 characters of `A-Z a-z 0-9 _ -`; it is
    /// stored beside every value it seals, so name keys by generation:
    /// `k1`, `2026-12`) from 32 random bytes.
    pub fn new(id: &str, key: &[u8]) -> Result<Self, StoreError> {
        let valid_id = !id.is_empty()
            && id.len() <= MAX_KEY_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_id {
            return Err(config(format!(
                "the encryption key id `{}` is not 1 to {MAX_KEY_ID} characters of A-Z, a-z, 0-9, `_` and `-`: rename it",
                id.escape_debug()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| {
            config(format!(
                "the encryption key `{id}` is {} bytes long; it must be 32 random bytes (for example `openssl rand -base64 32`)",
                key.len()
            ))
        })?;
        Ok(EncryptionKey {
            id: id.to_owned(),
            cipher,
        })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The keys a store seals and opens values with: the first seals, every one
/// opens. To rotate, put a new key first and keep the old ones after it
/// until every value sealed with them has been rewritten or has expired.
///
/// Its [`Debug`](fmt::Debug) lists the key ids only.
pub struct Keyring {
    keys: Vec<EncryptionKey>,
}

impl Keyring {
    /// A keyring that seals and opens with `key`.
    pub fn new(key: EncryptionKey) -> Self {
        Keyring { keys: vec![key] }
    }

    /// Adds `key` for opening values only (an older key, during a rotation).
    pub fn with_old_key(mut self, key: EncryptionKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Parses `id:base64,id:base64,...`: each key 32 bytes in standard
    /// base64 (padding optional), the first one sealing. The message of an
    /// error names the key id, never the key.
    pub fn parse(spec: &str) -> Result<Self, StoreError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((id, encoded)) = part.split_once(':') else {
                return Err(config(format!(
                    "an encryption key is not `id:base64` (key number {}): write each key as `id:base64` and separate keys with commas",
                    keys.len() + 1
                )));
            };
            let bytes = STANDARD
                .decode(encoded.trim())
                .or_else(|_| STANDARD_NO_PAD.decode(encoded.trim()))
                .map_err(|_| {
                    config(format!(
                        "the encryption key `{}` is not valid base64: write it as `id:` followed by 32 bytes in base64",
                        id.trim().escape_debug()
                    ))
                })?;
            keys.push(EncryptionKey::new(id.trim(), &bytes)?);
        }
        if keys.is_empty() {
            return Err(config(
                "no encryption key given: write `id:base64` (32 random bytes, for example `k1:$(openssl rand -base64 32)`)",
            ));
        }
        Ok(Keyring { keys })
    }

    /// The keyring in the environment variable `var` ([`KEY_ENV`] by
    /// default), in [`parse`](Self::parse)'s format; `None` when it is unset.
    pub fn from_env(var: &str) -> Result<Option<Self>, StoreError> {
        match std::env::var(var) {
            Ok(spec) => Self::parse(&spec)
                .map(Some)
                .map_err(|e| config(format!("{var}: {e}"))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(config(format!(
                "{var} is not valid UTF-8: set it to `id:base64`"
            ))),
        }
    }

    /// The ids, the sealing one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(EncryptionKey::id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

/// How values are written: sealed with a keyring, or in plaintext (only
/// when the application asked for it).
#[derive(Debug)]
pub(crate) enum Sealing {
    Encrypted(Keyring),
    Plaintext,
}

impl Sealing {
    /// `plain` as stored under `name`.
    pub(crate) fn seal(&self, name: &str, plain: &[u8]) -> Result<String, StoreError> {
        let keyring = match self {
            Sealing::Plaintext => {
                return Ok(format!("{PLAIN}{}", String::from_utf8_lossy(plain)));
            }
            Sealing::Encrypted(keyring) => keyring,
        };
        let key = &keyring.keys[0];
        let nonce = XNonce::try_generate().map_err(|_| {
            StoreError::new(
                StoreErrorKind::Server,
                "the operating system's random number generator failed, so no value can be encrypted",
            )
        })?;
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| StoreError::new(StoreErrorKind::Server, "encryption failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED}{}.{}", key.id, STANDARD.encode(bytes)))
    }

    /// The plaintext of `value`, stored under `name`. Errors say what is
    /// wrong (no secret: a value's content is never quoted).
    pub(crate) fn open(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let value = std::str::from_utf8(value).map_err(|_| corrupt(name, "it is not text"))?;
        if let Some(plain) = value.strip_prefix(PLAIN) {
            return match self {
                Sealing::Plaintext => Ok(plain.as_bytes().to_vec()),
                Sealing::Encrypted(_) => Err(StoreError::new(
                    StoreErrorKind::Decrypt,
                    format!(
                        "Redis key {name} holds a plaintext value but this store encrypts: delete the key, or open it with a store built with .plaintext()"
                    ),
                )),
            };
        }
        let Some(rest) = value.strip_prefix(SEALED) else {
            return Err(corrupt(name, "it is not a tokenauth value"));
        };
        let (id, encoded) = rest
            .split_once('.')
            .ok_or_else(|| corrupt(name, "it has no key id"))?;
        let keyring = match self {
            Sealing::Encrypted(keyring) => keyring,
            Sealing::Plaintext => {
                return Err(StoreError::new(
                    StoreErrorKind::Decrypt,
                    format!(
                        "Redis key {name} is encrypted with key `{}` but this store has no encryption key: set {KEY_ENV} or give RedisStoreBuilder::encryption a keyring holding it",
                        id.escape_debug()
                    ),
                ));
            }
        };
        let Some(key) = keyring.keys.iter().find(|k| k.id == id) else {
            return Err(StoreError::new(
                StoreErrorKind::Decrypt,
                format!(
                    "Redis key {name} is encrypted with key `{}`, which is not in this store's keyring ({:?}): add that key to the keyring (after the sealing key) or delete the Redis key",
                    id.escape_debug(),
                    keyring.ids().collect::<Vec<_>>()
                ),
            ));
        };
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| corrupt(name, "its ciphertext is not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt(name, "its ciphertext is truncated"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| corrupt(name, "its nonce is malformed"))?;
        key.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                StoreError::new(
                    StoreErrorKind::Decrypt,
                    format!(
                        "Redis key {name} does not decrypt with key `{id}`: the key with that id is not the one that encrypted it (a wrong key under the right id), or the value was changed or copied from another key; fix the keyring or delete the Redis key"
                    ),
                )
            })
    }
}

fn config(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Config, message)
}

pub(crate) fn corrupt(name: &str, why: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!("Redis key {name} does not hold a value tokenauth wrote ({why}): delete the key"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> EncryptionKey {
        EncryptionKey::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn a_value_opens_under_its_own_name_only() {
        let sealing = Sealing::Encrypted(Keyring::new(key("k1", 1)));
        let sealed = sealing.seal("a", b"secret-token").unwrap();
        assert!(!sealed.contains("secret-token"));
        assert!(sealed.starts_with("tokenauth1.enc.k1."));
        assert_eq!(
            sealing.open("a", sealed.as_bytes()).unwrap(),
            b"secret-token"
        );
        let moved = sealing.open("b", sealed.as_bytes()).unwrap_err();
        assert_eq!(moved.kind(), StoreErrorKind::Decrypt);
        // Two seals of one value differ (random nonces).
        assert_ne!(sealed, sealing.seal("a", b"secret-token").unwrap());
    }

    #[test]
    fn keyrings_parse_and_never_print_keys() {
        let k1 = STANDARD.encode([7u8; 32]);
        let k2 = STANDARD_NO_PAD.encode([8u8; 32]);
        let ring = Keyring::parse(&format!("k2:{k2}, k1:{k1}")).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k1"]);
        let debug = format!("{ring:?} {:?}", key("k9", 9));
        assert!(!debug.contains(&k1) && !debug.contains(&k2), "{debug}");
        for (bad, says) in [
            ("", "no encryption key"),
            ("k1", "`id:base64`"),
            ("k1:not base64!", "not valid base64"),
            ("k1:AAAA", "must be 32 random bytes"),
            ("bad id:AAAA", "is not 1 to 32 characters"),
        ] {
            let e = Keyring::parse(bad).unwrap_err();
            assert_eq!(e.kind(), StoreErrorKind::Config);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn garbage_is_a_typed_error_never_a_panic() {
        let sealing = Sealing::Encrypted(Keyring::new(key("k1", 1)));
        for junk in [
            &b""[..],
            b"\xff\xfe",
            b"tokenauth1.enc.",
            b"tokenauth1.enc.k1",
            b"tokenauth1.enc.k1.!!!",
            b"tokenauth1.enc.k1.AAAA",
            b"tokenauth1.enc.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            b"tokenauth1.enc.zz.AAAA",
            b"tokenauth1.plain.{}",
        ] {
            let e = sealing.open("a", junk).unwrap_err();
            assert!(
                matches!(e.kind(), StoreErrorKind::Corrupt | StoreErrorKind::Decrypt),
                "{e}"
            );
        }
    }
}
