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

#[derive(Deserialize)]
pub struct Policy {
    #[serde(default = "default_length")]
    pub length: usize,
    #[serde(default)]
    pub alphabet: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn default_length() -> usize {
    32
}

impl Policy {
    /// The characters a value may use, without duplicates, in a stable order.
    fn alphabet(&self) -> Vec<char> {
        let source: String = match &self.alphabet {
            Some(a) => a.clone(),
            None if !self.rules.is_empty() => self.rules.iter().map(|r| r.charset.as_str()).collect(),
            None => DEFAULT_ALPHABET.into(),
        };
        let mut out: Vec<char> = Vec::new();
        for c in source.chars() {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// Reject policies no value can satisfy, with a message for the operator.
    pub fn validate(&self) -> Result<(), String> {
        if !(8..=1024).contains(&self.length) {
            return Err(format!("length must be between 8 and 1024, not {}", self.length));
        }
        let alphabet = self.alphabet();
        if alphabet.len() < 2 {
            return Err("alphabet needs at least 2 distinct characters".into());
        }
        let mut required = 0;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.charset.is_empty() {
                return Err(format!("rules[{i}].charset is empty"));
            }
            if let Some(c) = rule.charset.chars().find(|c| !alphabet.contains(c)) {
                return Err(format!("rules[{i}].charset has {c:?}, which is not in the alphabet"));
            }
            required += rule.min_chars;
        }
        if required > self.length {
            return Err(format!(
                "rules require {required} characters but length is {}",
                self.length
            ));
        }
        Ok(())
    }

    /// A short description for `plan`.
    pub fn describe(&self) -> String {
        let alphabet = self.alphabet().len();
        if self.rules.is_empty() {
            format!("{alphabet}-character alphabet")
        } else {
            let mins: Vec<String> = self.rules.iter().map(|r| r.min_chars.to_string()).collect();
            format!("{alphabet}-character alphabet, rule minimums {}", mins.join("/"))
        }
    }

    /// A fresh value: each rule's minimum drawn from its charset, the rest
    /// from the alphabet, then shuffled so positions give nothing away.
    pub fn generate(&self) -> Result<String, String> {
        let alphabet = self.alphabet();
        let mut chars: Vec<char> = Vec::with_capacity(self.length);
        for rule in &self.rules {
            let set: Vec<char> = rule.charset.chars().collect();
            for _ in 0..rule.min_chars {
                chars.push(set[random_below(set.len())?]);
            }
        }
        while chars.len() < self.length {
            chars.push(alphabet[random_below(alphabet.len())?]);
        }
        for i in (1..chars.len()).rev() {
            chars.swap(i, random_below(i + 1)?);
        }
        Ok(chars.into_iter().collect())
    }

    /// Does `value` obey the policy? The message names the broken rule only.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let alphabet = self.alphabet();
        let len = value.chars().count();
        if len != self.length {
            return Err(format!("value has {len} characters, policy wants {}", self.length));
        }
        if value.chars().any(|c| !alphabet.contains(&c)) {
            return Err("value has characters outside the alphabet".into());
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let n = value.chars().filter(|c| rule.charset.contains(*c)).count();
            if n < rule.min_chars {
                return Err(format!("rules[{i}] wants {} characters from its charset, value has {n}", rule.min_chars));
            }
        }
        Ok(())
    }
}

/// A uniformly random index below `n`, by rejection sampling.
fn random_below(n: usize) -> Result<usize, String> {
    let n = n as u32;
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut buf = [0u8; 4];
        getrandom::fill(&mut buf).map_err(|e| format!("no randomness: {e}"))?;
        let x = u32::from_le_bytes(buf);
        if x < zone {
            return Ok((x % n) as usize);
        }
    }
}
