//! JWTs signed at test time for the dev server's JWT and Kubernetes auth
//! methods: keys made by the `openssl` CLI in a temp dir (RSA and P-256),
//! and compact JWS tokens (RS256, ES256) signed with `openssl dgst`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Signing keys and their public PEMs; the files live as long as this.
pub struct Keys {
    _dir: tempfile::TempDir,
    pub rsa: PathBuf,
    pub rsa_pub: String,
    pub ec: PathBuf,
    pub ec_pub: String,
    /// A second RSA key no server trusts (bad-signature tests).
    pub other_rsa: PathBuf,
}

fn openssl(args: &[&str]) -> bool {
    Command::new("openssl").args(args).output().is_ok_and(|o| o.status.success())
}

/// Fresh keys, or `None` when the openssl CLI is missing.
pub fn keys() -> Option<Keys> {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let make = |name: &str, algo: &[&str]| {
        let out = path(name);
        let mut args = vec!["genpkey"];
        args.extend_from_slice(algo);
        args.extend(["-out", out.to_str().unwrap()]);
        openssl(&args).then_some(out)
    };
    let public = |key: &Path| {
        let out = key.with_extension("pub");
        openssl(&["pkey", "-in", key.to_str()?, "-pubout", "-out", out.to_str()?])
            .then(|| std::fs::read_to_string(&out).ok())?
    };
    let rsa_args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    let rsa = make("rsa.pem", &rsa_args)?;
    let ec = make("ec.pem", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])?;
    let other_rsa = make("other.pem", &rsa_args)?;
    Some(Keys { rsa_pub: public(&rsa)?, ec_pub: public(&ec)?, rsa, ec, other_rsa, _dir: dir })
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A compact JWS of `claims` signed by `key` (`RS256` or `ES256`); ES256
/// signatures are turned from DER into JWS's `r || s`.
pub fn sign(key: &Path, alg: &str, claims: &Value) -> String {
    let header = json!({"alg": alg, "typ": "JWT"});
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let dir = key.parent().unwrap();
    let (data, sig) = (dir.join("input"), dir.join("sig"));
    std::fs::write(&data, &input).unwrap();
    assert!(openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        key.to_str().unwrap(),
        "-out",
        sig.to_str().unwrap(),
        data.to_str().unwrap()
    ]));
    let mut signature = std::fs::read(&sig).unwrap();
    if alg == "ES256" {
        signature = der_to_raw(&signature);
    }
    format!("{input}.{}", b64url(&signature))
}

fn der_to_raw(der: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut rest = &der[2..];
    for _ in 0..2 {
        let len = rest[1] as usize;
        let int = &rest[2..2 + len];
        let int = if int.len() > 32 { &int[int.len() - 32..] } else { int };
        raw.extend(std::iter::repeat_n(0, 32 - int.len()));
        raw.extend_from_slice(int);
        rest = &rest[2 + len..];
    }
    raw
}

/// Now, in Unix seconds (JWT times).
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}
