//! Scrubbing: every value the run holds a handle for is replaced by that
//! handle in what a response hands the plugin (body and header values), so
//! a server that echoes the request (or is made to) cannot hand a secret
//! back to the plugin.
//!
//! Each value is looked for as it is, JSON-escaped (as an echoed JSON body
//! carries it) and form-encoded (as an echoed form or query carries it);
//! values the request derived from secrets (the base64 of a basic-auth
//! pair) are replaced by a fixed marker. One left-to-right pass, longest
//! needle first at each position, so a value that contains another is
//! replaced whole.
//!
//! Values shorter than [`MIN_VALUE`] bytes are skipped, as the log redactor
//! ([`crate::secret::Redactor`]) skips them: a one- to three-byte value
//! (`1`, `yes`, a short port) would be replaced inside ordinary words and
//! numbers all over the response, which would corrupt it for the plugin
//! while protecting nothing a guess could not find.

use serde_json::Value;

/// The shortest value that is scrubbed.
pub const MIN_VALUE: usize = 4;

/// What replaces a derived value (no handle stands for it).
pub const DERIVED: &[u8] = b"rotator-handle:derived";

/// The needles of one response: `(bytes, replacement)`, longest first.
pub struct Scrubber {
    needles: Vec<(Vec<u8>, Vec<u8>)>,
    /// Which bytes can start a needle, to skip most positions cheaply.
    first: [bool; 256],
}

impl Scrubber {
    /// Needles for every `(handle, value)` and every derived value.
    pub fn new<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, derived: &[Vec<u8>]) -> Self {
        let mut needles: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut add = |needle: Vec<u8>, with: &[u8]| {
            if needle.len() >= MIN_VALUE && !needles.iter().any(|(n, _)| *n == needle) {
                needles.push((needle, with.to_vec()));
            }
        };
        for (handle, value) in pairs {
            let escaped = Value::String(value.to_owned()).to_string();
            let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            add(value.as_bytes().to_vec(), handle.as_bytes());
            add(escaped.as_bytes()[1..escaped.len() - 1].to_vec(), handle.as_bytes());
            add(form.into_bytes(), handle.as_bytes());
        }
        for d in derived {
            add(d.clone(), DERIVED);
        }
        needles.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        let mut first = [false; 256];
        for (n, _) in &needles {
            first[n[0] as usize] = true;
        }
        Self { needles, first }
    }

    /// `data` with every needle replaced.
    pub fn bytes(&self, data: &[u8]) -> Vec<u8> {
        if self.needles.is_empty() {
            return data.to_vec();
        }
        let mut out = Vec::with_capacity(data.len());
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            let hit = if self.first[rest[0] as usize] {
                self.needles.iter().find(|(n, _)| rest.starts_with(n))
            } else {
                None
            };
            match hit {
                Some((n, with)) => {
                    out.extend_from_slice(with);
                    at += n.len();
                }
                None => {
                    out.push(rest[0]);
                    at += 1;
                }
            }
        }
        out
    }

    /// [`Self::bytes`] for text. Needles and replacements are whole UTF-8
    /// strings (or ASCII), so the result is UTF-8 again.
    pub fn text(&self, text: &str) -> String {
        String::from_utf8(self.bytes(text.as_bytes()))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn values_are_replaced_in_every_form_longest_first() {
        let pairs = [("h:short", "pass"), ("h:long", "pass\"word&x y")];
        let s = Scrubber::new(pairs.into_iter(), &[b"dXNlcjpwYXNz".to_vec()]);
        let body =
            br#"{"echo":"pass\"word&x y","form":"pass%22word%26x+y","p":"pass","b":"Basic dXNlcjpwYXNz","n":"abc"}"#;
        assert_eq!(
            String::from_utf8(s.bytes(body)).unwrap(),
            r#"{"echo":"h:long","form":"h:long","p":"h:short","b":"Basic rotator-handle:derived","n":"abc"}"#
        );
        let short = Scrubber::new([("h:x", "abc")].into_iter(), &[]);
        assert_eq!(short.text("abcabc"), "abcabc", "values under MIN_VALUE bytes are left alone");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

        /// Whatever surrounds it, and however often, a value never survives
        /// scrubbing, in any of its forms. (The handle is written in
        /// characters the values never use, so an occurrence in the output
        /// could only be one the pass missed.)
        #[test]
        fn no_value_survives(
            value in "[a-z0-9 \"&%+\\\\/]{4,24}",
            noise in proptest::collection::vec("[a-z0-9 \"&%+\\\\/]{0,12}", 1..6),
        ) {
            let escaped = Value::String(value.clone()).to_string();
            let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            let forms = [value.clone(), escaped[1..escaped.len() - 1].to_owned(), form];
            let mut body = String::new();
            for (i, n) in noise.iter().enumerate() {
                body.push_str(n);
                body.push_str(&forms[i % 3]);
            }
            let s = Scrubber::new([("#HANDLE#", value.as_str())].into_iter(), &[]);
            let out = s.text(&body);
            prop_assert!(!out.contains(&value), "{out}");
        }
    }
}
