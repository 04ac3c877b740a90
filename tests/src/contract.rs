//! The documented Vault API samples of `shared/contracts/vault/` (a sibling
//! of the repository, as in CI) and the one rule for comparing an answer
//! with them: the same JSON keys, recursively, with every exception named.
//!
//! Each sample gets a stable id built from what it documents (file,
//! method, path, status, server, the first error message), so a table of
//! expectations can be keyed by it and a new sample shows up as an id no
//! table knows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The contracts folder: `../shared/contracts/vault/` from the repository root.
pub fn contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/contracts/vault")
}

/// One documented sample.
#[derive(Clone, Debug)]
pub struct Sample {
    /// `file method path status server ["first error"] [#n]`, or for
    /// headers.json `headers.json name direction`.
    pub id: String,
    pub file: String,
    /// The record as stored.
    pub entry: Value,
}

impl Sample {
    /// The documented answer body (`Null` when the docs give none).
    pub fn response(&self) -> &Value {
        &self.entry["response"]
    }

    /// The documented request body (`Null` when there is none).
    pub fn request(&self) -> &Value {
        &self.entry["request"]
    }

    /// The documented status.
    pub fn status(&self) -> u16 {
        self.entry["response_status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0)
    }
}

/// The records of one contracts file, as stored.
pub fn entries(file: &str) -> Vec<Value> {
    let path = contracts_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every sample of every `*.json` file in the contracts folder, in file
/// order. Panics if the folder or a file cannot be read.
pub fn all_samples() -> Vec<Sample> {
    let dir = contracts_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let entries = entries(&file);
        let bases: Vec<String> = entries.iter().map(|e| base_id(&file, e)).collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for base in &bases {
            *counts.entry(base).or_default() += 1;
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (entry, base) in entries.into_iter().zip(&bases) {
            let id = if counts[base.as_str()] > 1 {
                let n = seen.entry(base).or_default();
                *n += 1;
                format!("{base} #{n}")
            } else {
                base.clone()
            };
            out.push(Sample { id, file: file.clone(), entry });
        }
    }
    out
}

fn base_id(file: &str, e: &Value) -> String {
    if file == "headers.json" {
        return format!("{file} {} {}", text(&e["name"]), text(&e["direction"]));
    }
    let mut id =
        format!("{file} {} {} {} {}", text(&e["method"]), text(&e["path"]), e["response_status"], text(&e["server"]));
    if let Some(message) = e["response"]["errors"][0].as_str() {
        id.push_str(&format!(" {message:?}"));
    }
    id
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// The envelope keys Vault sends with every logical answer; samples often
/// show only some of them (contracts README).
pub const ENVELOPE: [&str; 9] =
    ["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth", "mount_type"];

/// An exception to "the same keys", at a dot-separated path from the top
/// (`""` is the top level; `*` matches any key of a data-keyed map).
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// The keys of this object are data (a secret, custom metadata), not
    /// schema: they are not compared.
    Opaque(&'static str),
    /// The keys of this object are data, its values schema: each value is
    /// compared with the sample's first value.
    Map(&'static str),
    /// The answer may have these keys at this path that the sample lacks.
    Extra(&'static str, &'static [&'static str], &'static str),
    /// The answer may lack these keys of the sample at this path.
    Missing(&'static str, &'static [&'static str], &'static str),
    /// The sample shows only the `data` object: compare it with the
    /// answer's `data` (rule paths then start at `data`).
    DataOnly,
}

/// How `actual` differs from `documented` in keys, recursively, after
/// `rules`. At the top level of an envelope answer the envelope keys the
/// sample leaves out are allowed. Empty: the same shape.
pub fn key_differences(documented: &Value, actual: &Value, rules: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    if rules.iter().any(|r| matches!(r, Rule::DataOnly)) {
        compare(documented, &actual["data"], "data", rules, &mut out);
        return out;
    }
    compare(documented, actual, "", rules, &mut out);
    out
}

fn matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('.'), path.split('.'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == "*" || a == b => {}
            _ => return false,
        }
    }
}

fn compare(documented: &Value, actual: &Value, path: &str, rules: &[Rule], out: &mut Vec<String>) {
    let at = |p: &str| if p.is_empty() { "the top level".to_owned() } else { format!("`{p}`") };
    let (Value::Object(doc), Value::Object(got)) = (documented, actual) else {
        if documented.is_object() && !actual.is_object() {
            out.push(format!("{}: documented an object, got {actual}", at(path)));
        }
        if let (Value::Array(doc), Value::Array(got)) = (documented, actual)
            && let (Some(d), Some(g)) = (doc.first(), got.first())
        {
            compare(d, g, &join(path, "0"), rules, out);
        }
        return;
    };
    if rules.iter().any(|r| matches!(r, Rule::Opaque(p) if matches(p, path))) {
        return;
    }
    if rules.iter().any(|r| matches!(r, Rule::Map(p) if matches(p, path))) {
        if let Some(first) = doc.values().next() {
            for (key, value) in got {
                compare(first, value, &join(path, key), rules, out);
            }
        }
        return;
    }
    let envelope = path.is_empty() && got.contains_key("request_id");
    let doc_keys: BTreeSet<&String> = doc.keys().collect();
    let got_keys: BTreeSet<&String> = got.keys().collect();
    let lacking: Vec<&&String> = doc_keys.difference(&got_keys).filter(|k| !excused(rules, path, k, true)).collect();
    let added: Vec<&&String> = got_keys
        .difference(&doc_keys)
        .filter(|k| !(excused(rules, path, k, false) || envelope && ENVELOPE.contains(&k.as_str())))
        .collect();
    if !lacking.is_empty() {
        out.push(format!("{}: missing documented keys {lacking:?}", at(path)));
    }
    if !added.is_empty() {
        out.push(format!("{}: keys the sample does not have {added:?}", at(path)));
    }
    for (key, value) in doc {
        if let Some(other) = got.get(key) {
            compare(value, other, &join(path, key), rules, out);
        }
    }
}

/// Does a rule at `path` let `key` be absent (`missing`) or extra?
fn excused(rules: &[Rule], path: &str, key: &str, missing: bool) -> bool {
    rules.iter().any(|rule| match (rule, missing) {
        (Rule::Missing(p, keys, _), true) | (Rule::Extra(p, keys, _), false) => matches(p, path) && keys.contains(&key),
        _ => false,
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_compared_recursively_with_named_exceptions() {
        let doc = json!({"data": {"a": 1, "m": {"x": {"k": 1}}, "s": {"foo": "bar"}}});
        let got = json!({"request_id": "r", "mount_type": "kv",
                         "data": {"a": 2, "m": {"1": {"k": 2}, "2": {"k": 3, "z": 0}}, "s": {"other": 1}}});
        let rules = [Rule::Map("data.m"), Rule::Opaque("data.s")];
        assert_eq!(key_differences(&doc, &got, &rules), vec!["`data.m.2`: keys the sample does not have [\"z\"]"]);
        let rules = [Rule::Map("data.m"), Rule::Opaque("data.s"), Rule::Extra("data.m.*", &["z"], "why")];
        assert!(key_differences(&doc, &got, &rules).is_empty());
        let missing = key_differences(&json!({"a": 1, "b": 2}), &json!({"a": 1}), &[]);
        assert_eq!(missing, vec!["the top level: missing documented keys [\"b\"]"]);
        assert!(
            key_differences(&json!({"a": 1, "b": 2}), &json!({"a": 1}), &[Rule::Missing("", &["b"], "")]).is_empty()
        );
        let extra = key_differences(&json!({"a": 1}), &json!({"a": 1, "lease_id": ""}), &[]);
        assert_eq!(extra.len(), 1, "envelope keys are allowed only in an envelope answer");
        assert!(key_differences(&json!({"a": {}}), &json!({"data": {"a": {}}}), &[Rule::DataOnly]).is_empty());
    }
}
