//! Signed JWTs: decoding, public keys from PEM, and signature checks.
//!
//! The JWT and Kubernetes auth methods validate tokens locally against
//! public keys an operator configured (`jwt_validation_pubkeys`,
//! `pem_keys`). The cryptography is not ours: it is the signature
//! verification that rustls already links for TLS (ring's RSA PKCS#1/PSS,
//! ECDSA P-256/P-384 and Ed25519 verifiers, reached through rustls'
//! `SignatureVerificationAlgorithm`s), so no crypto is hand-written and no
//! extra crate is needed. This module only does the plumbing around it:
//! base64, a minimal DER reader to pull the key out of a PEM
//! `PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`, and turning a JWS
//! ECDSA signature (`r || s`) into the DER form the verifier takes.

use rustls::crypto::ring::default_provider;
use rustls::pki_types::alg_id;
use serde_json::{Map, Value};

/// A public key: its SubjectPublicKeyInfo algorithm (the DER contents of
/// the AlgorithmIdentifier) and the key bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PublicKey {
    alg: Vec<u8>,
    key: Vec<u8>,
}

/// A decoded, not yet verified, JWT.
pub(crate) struct Jwt {
    pub alg: String,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// The JWS algorithms the dev server verifies.
pub(crate) const SUPPORTED_ALGS: [&str; 10] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

/// Every public key in a config's list of PEM texts; the error is worded
/// for the config write's answer.
pub(crate) fn parse_pem_list(pems: &[String]) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for pem in pems {
        keys.extend(parse_pem_keys(pem).map_err(|e| format!("error parsing public key: {e}"))?);
    }
    Ok(keys)
}

/// Every public key in a PEM text (several blocks may follow each other).
fn parse_pem_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or("malformed PEM header")?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_start.find(&end_marker).ok_or_else(|| format!("PEM block {label:?} is not closed"))?;
        let der = base64_decode(&body_start[..end]).map_err(|e| format!("PEM block {label:?}: {e}"))?;
        let key = match label {
            "PUBLIC KEY" => spki(&der)?,
            "RSA PUBLIC KEY" => PublicKey { alg: alg_id::RSA_ENCRYPTION.to_vec(), key: der },
            "CERTIFICATE" => certificate_key(&der)?,
            other => return Err(format!("unsupported PEM block {other:?}: expected a public key or certificate")),
        };
        keys.push(key);
        rest = &body_start[end + end_marker.len()..];
    }
    if keys.is_empty() {
        return Err("no PEM-encoded public key found".into());
    }
    Ok(keys)
}

/// Split and decode a compact JWS; the signature is not checked yet.
pub(crate) fn decode(token: &str) -> Result<Jwt, String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("malformed JWT: expected three dot-separated parts".into());
    };
    let json = |part: &str, what: &str| -> Result<Map<String, Value>, String> {
        let bytes = base64_decode(part).map_err(|e| format!("malformed JWT {what}: {e}"))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("malformed JWT {what}: not a JSON object")),
        }
    };
    let header = json(header, "header")?;
    let claims = json(payload, "payload")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("").to_owned();
    let signature = base64_decode(signature).map_err(|e| format!("malformed JWT signature: {e}"))?;
    let signing_input = token.trim()[..header_len(token.trim())].to_owned();
    Ok(Jwt { alg, claims, signing_input, signature })
}

/// Length of "header.payload" in a compact JWS.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

impl Jwt {
    /// Check the signature with any of `keys`, allowing only `algs`
    /// (empty: every supported one). "none" is never accepted.
    pub fn verify(&self, keys: &[PublicKey], algs: &[String]) -> Result<(), String> {
        if !SUPPORTED_ALGS.contains(&self.alg.as_str()) || (!algs.is_empty() && !algs.contains(&self.alg)) {
            return Err(format!("unsupported signing algorithm {:?}", self.alg));
        }
        let sig_alg = match self.alg.as_str() {
            "RS256" => alg_id::RSA_PKCS1_SHA256,
            "RS384" => alg_id::RSA_PKCS1_SHA384,
            "RS512" => alg_id::RSA_PKCS1_SHA512,
            "PS256" => alg_id::RSA_PSS_SHA256,
            "PS384" => alg_id::RSA_PSS_SHA384,
            "PS512" => alg_id::RSA_PSS_SHA512,
            "ES256" => alg_id::ECDSA_SHA256,
            "ES384" => alg_id::ECDSA_SHA384,
            "ES512" => alg_id::ECDSA_SHA512,
            _ => alg_id::ED25519,
        };
        let signature = match self.alg.as_str() {
            "ES256" | "ES384" | "ES512" => ecdsa_der(&self.signature)?,
            _ => self.signature.clone(),
        };
        let provider = default_provider();
        for key in keys {
            let verifiers =
                provider.signature_verification_algorithms.all.iter().filter(|v| {
                    v.signature_alg_id() == sig_alg && v.public_key_alg_id().as_ref() == key.alg.as_slice()
                });
            for verifier in verifiers {
                if verifier.verify_signature(&key.key, self.signing_input.as_bytes(), &signature).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("failed to verify id token signature".into())
    }
}

/// JWS ECDSA signatures are `r || s`; the verifier wants DER
/// `SEQUENCE { INTEGER r, INTEGER s }`.
fn ecdsa_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 132 {
        return Err("malformed ECDSA signature".into());
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = Vec::new();
    for int in [r, s] {
        let trimmed: &[u8] = match int.iter().position(|b| *b != 0) {
            Some(i) => &int[i..],
            None => &[0],
        };
        let pad = trimmed[0] & 0x80 != 0;
        body.push(0x02);
        push_len(&mut body, trimmed.len() + usize::from(pad));
        if pad {
            body.push(0);
        }
        body.extend_from_slice(trimmed);
    }
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend(body);
    Ok(out)
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.push(0x81);
        out.push(len as u8);
    }
}

/// One DER element: (tag, contents, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "malformed DER".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }.
fn spki(der: &[u8]) -> Result<PublicKey, String> {
    let (tag, body, _) = tlv(der)?;
    if tag != 0x30 {
        return Err("public key is not a DER SEQUENCE".into());
    }
    let (tag, alg, rest) = tlv(body)?;
    let (bits_tag, bits, _) = tlv(rest)?;
    if tag != 0x30 || bits_tag != 0x03 || bits.first() != Some(&0) {
        return Err("malformed SubjectPublicKeyInfo".into());
    }
    Ok(PublicKey { alg: alg.to_vec(), key: bits[1..].to_vec() })
}

/// The public key of an X.509 certificate (Kubernetes accepts those too).
fn certificate_key(der: &[u8]) -> Result<PublicKey, String> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    // serial, signature algorithm, issuer, validity, subject
    for _ in 0..5 {
        rest = tlv(rest)?.2;
    }
    let (_, _, after_spki) = tlv(rest)?;
    spki(&rest[..rest.len() - after_spki.len()])
}

/// Base64, standard or URL alphabet, padding and whitespace ignored.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return Err(format!("invalid base64 character {:?}", c as char)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_base64_and_ecdsa_der() {
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("-_8").unwrap(), [0xfb, 0xff]);
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80;
        raw[63] = 1;
        let der = ecdsa_der(&raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21], "r gets a leading zero");
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01], "s is trimmed");
    }

    #[test]
    fn devserver_jwts_decode_and_refuse_bad_input() {
        assert!(decode("a.b").is_err());
        assert!(parse_pem_keys("not pem").is_err());
        // {"alg":"none"}.{"sub":"x"}.
        let jwt = decode("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.").unwrap();
        assert_eq!((jwt.alg.as_str(), jwt.claims["sub"].as_str()), ("none", Some("x")));
        assert!(jwt.verify(&[], &[]).unwrap_err().contains("unsupported signing algorithm"));
    }
}
