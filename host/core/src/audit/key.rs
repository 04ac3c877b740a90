//! The audit chain's key: where it comes from, what it must look like, and
//! the two things it does (make a record's MAC, check one).
//!
//! The key is configured as a secret *reference*, never inline
//! (`[daemon] audit_key = { env = "ROTATOR_AUDIT_KEY" }` or `{ file = … }`).
//! The referenced text is the key in **hexadecimal**, at least
//! [`MIN_KEY_BYTES`] bytes (64 hex digits), e.g. `openssl rand -hex 32`.
//! Hex and a minimum length keep a passphrase ("hunter2") from passing as
//! a key; an HMAC key shorter than its 32-byte output is weaker than the
//! hash it is built on.
//!
//! The key is held only in zeroizing memory, its `Debug` shows nothing, and
//! no error names any part of it (not even the offending character).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::config::Config;

/// The shortest key accepted, in bytes (HMAC-SHA256's output size).
pub const MIN_KEY_BYTES: usize = 32;
/// The longest key accepted, in bytes: a bound, not a recommendation
/// (HMAC hashes longer keys down to 32 bytes anyway).
pub const MAX_KEY_BYTES: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 key of an audit chain. Cheap to clone.
#[derive(Clone)]
pub struct AuditKey(std::sync::Arc<Zeroizing<Vec<u8>>>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

/// Why a key was refused. Names the problem and the source, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("audit_key: {0}")]
    Unreadable(String),
    #[error("audit_key is not hexadecimal (use e.g. `openssl rand -hex 32`)")]
    NotHex,
    #[error(
        "audit_key is {bytes} bytes; at least {MIN_KEY_BYTES} are needed (64 hex digits, e.g. `openssl rand -hex 32`)"
    )]
    TooShort { bytes: usize },
    #[error("audit_key is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
}

impl AuditKey {
    /// A key from its hex text (surrounding whitespace ignored).
    pub fn from_hex(text: &SecretString) -> Result<Self, KeyError> {
        let text = text.expose_secret().trim();
        // Checked before decoding, so no buffer of an unbounded size is made.
        if text.len() > 2 * MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        // `hex`'s own error would quote the offending character.
        let bytes = Zeroizing::new(hex::decode(text).map_err(|_| KeyError::NotHex)?);
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort { bytes: bytes.len() });
        }
        Ok(Self(std::sync::Arc::new(bytes)))
    }

    /// `[daemon] audit_key`, resolved and checked; `None` when unset.
    pub fn from_config(config: &Config) -> Result<Option<Self>, KeyError> {
        let Some(reference) = &config.daemon.audit_key else { return Ok(None) };
        let text = reference.resolve(&config.base_dir).map_err(|e| KeyError::Unreadable(e.to_string()))?;
        Self::from_hex(&text).map(Some)
    }

    fn hmac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }

    /// HMAC-SHA256 of `bytes`, lowercase hex.
    pub fn mac(&self, bytes: &[u8]) -> String {
        let mut mac = self.hmac();
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `mac_hex` is the MAC of `bytes` exactly as [`mac`](Self::mac)
    /// writes it: 64 lowercase hex digits (so the same MAC in capitals, which
    /// is another line, is refused), compared in constant time.
    pub fn verify(&self, bytes: &[u8], mac_hex: &str) -> bool {
        let canonical = mac_hex.len() == 64 && mac_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let Ok(tag) = hex::decode(mac_hex) else { return false };
        if !canonical {
            return false;
        }
        let mut mac = self.hmac();
        mac.update(bytes);
        mac.verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Result<AuditKey, KeyError> {
        AuditKey::from_hex(&SecretString::from(text.to_owned()))
    }

    #[test]
    fn a_key_is_at_least_32_hex_bytes_and_errors_never_quote_it() {
        assert!(key(&"ab".repeat(32)).is_ok());
        assert!(key(&format!("  {}\n", "AB".repeat(40))).is_ok(), "whitespace trimmed, either case");
        assert_eq!(key(&"ab".repeat(31)).unwrap_err(), KeyError::TooShort { bytes: 31 });
        assert_eq!(key(&"ab".repeat(MAX_KEY_BYTES + 1)).unwrap_err(), KeyError::TooLong);
        let secretish = format!("{}zq", "ab".repeat(40));
        let err = key(&secretish).unwrap_err();
        assert_eq!(err, KeyError::NotHex);
        assert!(!err.to_string().contains('z'), "{err}");
        assert_eq!(key("correct horse battery staple").unwrap_err(), KeyError::NotHex);
    }

    #[test]
    fn debug_shows_nothing_and_macs_depend_on_key_and_bytes() {
        let a = key(&"01".repeat(32)).unwrap();
        let b = key(&"02".repeat(32)).unwrap();
        assert_eq!(format!("{a:?}"), "AuditKey(<redacted>)");
        let mac = a.mac(b"line");
        assert_eq!(mac.len(), 64);
        assert!(a.verify(b"line", &mac));
        assert!(!a.verify(b"linE", &mac));
        assert!(!b.verify(b"line", &mac));
        assert!(!a.verify(b"line", "not hex"));
        assert!(!a.verify(b"line", &mac[..62]));
        // RFC 4231 test case 2 shape check against the hmac crate: a known
        // key and message give a known tag.
        let jefe = AuditKey(std::sync::Arc::new(Zeroizing::new(b"Jefe".to_vec())));
        assert_eq!(
            jefe.mac(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
