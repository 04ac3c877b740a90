//! SCRAM-SHA-256 password verifiers, for `password_authentication =
//! "scram-sha-256"`.
//!
//! With that setting Vault's PostgreSQL plugin never sends a plain password
//! in SQL: `{{password}}` in creation and rotation statements becomes the
//! verifier PostgreSQL would store itself (RFC 5802 / RFC 7677, the
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` text of
//! `pg_authid.rolpassword`), which PostgreSQL accepts as an already hashed
//! password. Built on `sha2` with a small HMAC, PBKDF2 and base64, so no
//! new dependency is needed.

use sha2::{Digest, Sha256};

/// PostgreSQL's default `scram_iterations`.
const ITERATIONS: u32 = 4096;
/// SHA-256's block size, for HMAC.
const BLOCK: usize = 64;

/// The verifier for `password` with a fresh random salt.
pub(crate) fn verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    verifier_with(password, &salt, ITERATIONS)
}

/// The verifier for `password` with a given salt and iteration count.
fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = pbkdf2_sha256(password.as_bytes(), salt, iterations);
    let client_key = hmac_sha256(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, &[b"Server Key"]);
    format!("SCRAM-SHA-256${iterations}:{}${}:{}", base64(salt), base64(&stored_key), base64(&server_key))
}

/// HMAC-SHA-256 (RFC 2104) of the concatenated `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// PBKDF2-HMAC-SHA-256 (RFC 8018) for one 32-byte block, which is all
/// SCRAM-SHA-256 needs.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac_sha256(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &[&u]);
        out.iter_mut().zip(u).for_each(|(o, b)| *o ^= b);
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_db_hmac_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn devserver_db_pbkdf2_matches_known_vectors() {
        let one = pbkdf2_sha256(b"password", b"salt", 1);
        assert_eq!(hex::encode(one), "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
        let many = pbkdf2_sha256(b"password", b"salt", 4096);
        assert_eq!(hex::encode(many), "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
    }

    #[test]
    fn devserver_db_base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn devserver_db_verifier_has_postgres_layout() {
        let v = verifier("secret");
        let (head, keys) =
            v.split_once('$').and_then(|(h, rest)| rest.split_once('$').map(|(s, k)| (h, (s, k)))).unwrap();
        assert_eq!(head, "SCRAM-SHA-256");
        assert!(keys.0.starts_with("4096:"));
        assert_eq!(keys.1.split(':').count(), 2);
        assert_ne!(verifier("secret"), v, "a fresh salt each time");
    }
}
