//! KV version 1 (and cubbyhole, which behaves the same): one unversioned
//! JSON object per path.
//!
//! The request body *is* the secret (no `data` wrapper, unlike v2), writes
//! replace it whole, and a read reports a `ttl` (or `lease`) key as the
//! advisory `lease_duration`, falling back to the mount's default TTL; no
//! lease is created (see `shared/contracts/vault/kv1.json`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::response::{Envelope, Reply};
use super::util::{list_children, parse_duration};
use super::{Operation, Request};

/// The secrets of one KV v1 mount (or one token's cubbyhole).
#[derive(Default)]
pub(crate) struct KvV1 {
    entries: BTreeMap<String, Map<String, Value>>,
}

impl KvV1 {
    /// Answer a request for `key` (the path below the mount). `default_lease`
    /// is the TTL reads report when the secret has none (KV v1 reports the
    /// mount's default; cubbyhole reports nothing, so `None`).
    pub fn handle(&mut self, key: &str, req: &Request, default_lease: Option<u64>) -> Reply {
        match req.op {
            Operation::Read => self.read(key, default_lease),
            Operation::List => Reply::list(list_children(self.entries.keys(), key)),
            Operation::Write => {
                if key.is_empty() {
                    return Reply::bad_request("missing path");
                }
                if req.data.is_empty() {
                    return Reply::bad_request("missing data fields");
                }
                self.entries.insert(key.to_owned(), req.data.clone());
                Reply::NoContent
            }
            Operation::Delete => {
                self.entries.remove(key);
                Reply::NoContent
            }
            Operation::Patch | Operation::Head => Reply::unsupported_operation(),
        }
    }

    fn read(&self, key: &str, default_lease: Option<u64>) -> Reply {
        let Some(data) = self.entries.get(key) else {
            return Reply::not_found();
        };
        let mut envelope = Envelope::data(Value::Object(data.clone()));
        if let Some(default) = default_lease {
            let ttl = data.get("ttl").or_else(|| data.get("lease"));
            envelope.lease_duration = ttl.and_then(|v| parse_duration(v).ok()).map_or(default, |d| d.as_secs());
        }
        Reply::Envelope(axum::http::StatusCode::OK, envelope)
    }

    /// The existence check a write's ACL needs (create vs update).
    pub fn exists(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Hand over every secret (a v1 mount upgraded to v2 moves them).
    pub fn into_entries(self) -> BTreeMap<String, Map<String, Value>> {
        self.entries
    }
}
