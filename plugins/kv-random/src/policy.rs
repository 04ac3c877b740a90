//! Password policy: what a generated value may contain, how to generate one
//! that obeys it, and how to check one. Randomness comes from WASI random
//! (the host's CSPRNG) through `getrandom`; indices are drawn without modulo
//! bias.

use serde::Deserialize;

const DEFAULT_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// At least `min_chars` characters of the value come from `charset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub charset: String,
    pub min_chars: usize,
}

/// What a generated value must look like: checked, with its character sets
/// built once (generation and checking only read them).
pub struct Policy {
    pub length: usize,
    alphabet: Charset,
    rules: Vec<(Charset, usize)>,
}

pub fn default_length() -> usize {
    32
}

impl Policy {
    /// Check that a value can satisfy the policy, with a message for the
    /// operator if not. Without an alphabet, the rules' charsets together
    /// form it, or letters and digits if there are no rules either.
    pub fn new(length: usize, alphabet: Option<&str>, rules: &[Rule]) -> Result<Self, String> {
        if !(8..=1024).contains(&length) {
            return Err(format!("length must be between 8 and 1024, not {length}"));
        }
        let alphabet = match alphabet {
            Some(a) => Charset::new([a]),
            None if !rules.is_empty() => Charset::new(rules.iter().map(|r| r.charset.as_str())),
            None => Charset::new([DEFAULT_ALPHABET]),
        };
        if alphabet.chars.len() < 2 {
            return Err("alphabet needs at least 2 distinct characters".into());
        }
        let mut required = 0;
        for (i, rule) in rules.iter().enumerate() {
            if rule.charset.is_empty() {
                return Err(format!("rules[{i}].charset is empty"));
            }
            if let Some(c) = rule.charset.chars().find(|c| !alphabet.contains(*c)) {
                return Err(format!("rules[{i}].charset has {c:?}, which is not in the alphabet"));
            }
            required += rule.min_chars;
        }
        if required > length {
            return Err(format!("rules require {required} characters but length is {length}"));
        }
        let rules = rules.iter().map(|r| (Charset::new([r.charset.as_str()]), r.min_chars)).collect();
        Ok(Self { length, alphabet, rules })
    }

    /// A short description for `plan`.
    pub fn describe(&self) -> String {
        let alphabet = self.alphabet.chars.len();
        if self.rules.is_empty() {
            format!("{alphabet}-character alphabet")
        } else {
            let mins: Vec<String> = self.rules.iter().map(|(_, min)| min.to_string()).collect();
            format!("{alphabet}-character alphabet, rule minimums {}", mins.join("/"))
        }
    }

    /// A fresh value: each rule's minimum drawn from its charset, the rest
    /// from the alphabet, then shuffled so positions give nothing away.
    pub fn generate(&self) -> Result<String, String> {
        let mut rng = Random::new();
        let mut chars: Vec<char> = Vec::with_capacity(self.length);
        for (set, min) in &self.rules {
            for _ in 0..*min {
                chars.push(set.chars[rng.below(set.chars.len())?]);
            }
        }
        let alphabet = &self.alphabet.chars;
        while chars.len() < self.length {
            chars.push(alphabet[rng.below(alphabet.len())?]);
        }
        for i in (1..chars.len()).rev() {
            chars.swap(i, rng.below(i + 1)?);
        }
        Ok(chars.into_iter().collect())
    }

    /// Does `value` obey the policy? The message names the broken rule only.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let len = value.chars().count();
        if len != self.length {
            return Err(format!("value has {len} characters, policy wants {}", self.length));
        }
        if value.chars().any(|c| !self.alphabet.contains(c)) {
            return Err("value has characters outside the alphabet".into());
        }
        for (i, (set, min)) in self.rules.iter().enumerate() {
            let n = value.chars().filter(|c| set.contains(*c)).count();
            if n < *min {
                return Err(format!("rules[{i}] wants {min} characters from its charset, value has {n}"));
            }
        }
        Ok(())
    }
}

/// A set of characters with fast membership for ASCII (a bitmap) and a
/// plain list for anything else.
struct Charset {
    /// Distinct characters in first-seen order.
    chars: Vec<char>,
    ascii: u128,
}

impl Charset {
    fn new<'a>(sources: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = Charset { chars: Vec::new(), ascii: 0 };
        for c in sources.into_iter().flat_map(str::chars) {
            if !set.contains(c) {
                if c.is_ascii() {
                    set.ascii |= 1u128 << (c as u32);
                }
                set.chars.push(c);
            }
        }
        set
    }

    fn contains(&self, c: char) -> bool {
        if c.is_ascii() { self.ascii & (1u128 << (c as u32)) != 0 } else { self.chars.contains(&c) }
    }
}

/// Random indices from the host's CSPRNG, fetched in blocks: one
/// `wasi:random` call serves a whole password instead of one per character.
struct Random {
    buf: [u8; 256],
    used: usize,
}

impl Random {
    fn new() -> Self {
        Self { buf: [0; 256], used: 256 }
    }

    fn next_u32(&mut self) -> Result<u32, String> {
        if self.used + 4 > self.buf.len() {
            getrandom::fill(&mut self.buf).map_err(|e| format!("no randomness: {e}"))?;
            self.used = 0;
        }
        let bytes = [self.buf[self.used], self.buf[self.used + 1], self.buf[self.used + 2], self.buf[self.used + 3]];
        self.used += 4;
        Ok(u32::from_le_bytes(bytes))
    }

    /// A uniformly random index below `n`, by rejection sampling (no modulo bias).
    fn below(&mut self, n: usize) -> Result<usize, String> {
        let n = n as u32;
        let zone = u32::MAX - (u32::MAX % n);
        loop {
            let x = self.next_u32()?;
            if x < zone {
                return Ok((x % n) as usize);
            }
        }
    }
}
