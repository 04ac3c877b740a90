//! The token store and the `auth/token/` endpoints.
//!
//! Every authenticated request is checked against this store before it is
//! routed, so it lives beside the mount table rather than inside it. Today
//! it holds the root token only (no TTL, policy "root", like a dev Vault's);
//! the entry already carries what token create/renew/revoke will need
//! (accessor, parent, TTLs, expiry), so those endpoints can be added here.
//! Lookup answers have the keys of `shared/contracts/vault/token.json`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::response::Reply;
use super::util::rfc3339;
use super::{Operation, Request};

/// One token. The id is the secret; everything else may be shown.
pub(crate) struct TokenEntry {
    pub id: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub display_name: String,
    /// The path that created it (`auth/token/root` for the root token).
    pub path: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub creation_time: OffsetDateTime,
    /// Seconds; 0 means it never expires.
    pub creation_ttl: u64,
    pub explicit_max_ttl: u64,
    pub num_uses: u64,
    /// `None` for orphans (the root token is one).
    pub parent: Option<String>,
    pub expire_time: Option<OffsetDateTime>,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: &'static str,
}

impl TokenEntry {
    /// What the lookup endpoints answer; `show_id` is false for lookups by
    /// accessor, which must not reveal the token.
    fn lookup_json(&self, now: OffsetDateTime, show_id: bool) -> Value {
        let ttl = self.expire_time.map_or(0, |at| (at - now).whole_seconds().max(0));
        json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time.unix_timestamp(),
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": self.expire_time.map(rfc3339),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": if show_id { self.id.as_str() } else { "" },
            "identity_policies": [],
            "issue_time": rfc3339(self.creation_time),
            "meta": self.meta,
            "num_uses": self.num_uses,
            "orphan": self.parent.is_none(),
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": ttl,
            "type": self.token_type,
        })
    }
}

/// All tokens, by id.
pub(crate) struct TokenStore {
    tokens: HashMap<String, TokenEntry>,
}

impl TokenStore {
    /// A store holding only the root token.
    pub fn with_root(root_token: &str, now: OffsetDateTime) -> Self {
        let root = TokenEntry {
            id: root_token.to_owned(),
            accessor: random_accessor(),
            policies: vec!["root".into()],
            display_name: "root".into(),
            path: "auth/token/root".into(),
            meta: None,
            creation_time: now,
            creation_ttl: 0,
            explicit_max_ttl: 0,
            num_uses: 0,
            parent: None,
            expire_time: None,
            renewable: false,
            entity_id: String::new(),
            token_type: "service",
        };
        Self { tokens: HashMap::from([(root.id.clone(), root)]) }
    }

    /// The token with this id, if it exists and has not expired.
    pub fn get(&self, id: &str) -> Option<&TokenEntry> {
        let entry = self.tokens.get(id)?;
        match entry.expire_time {
            Some(at) if at <= OffsetDateTime::now_utc() => None,
            _ => Some(entry),
        }
    }

    fn by_accessor(&self, accessor: &str) -> Option<&TokenEntry> {
        self.tokens.values().find(|t| t.accessor == accessor)
    }
}

/// Vault's accessors are 24 random characters.
fn random_accessor() -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(24).map(char::from).collect()
}

/// Answer `auth/token/<rest>`.
pub(crate) fn handle(store: &mut TokenStore, rest: &str, req: &Request) -> Reply {
    let now = req.now;
    match (rest, req.op) {
        ("lookup-self", Operation::Read | Operation::Write) => match store.get(&req.client_token) {
            Some(entry) => Reply::ok(entry.lookup_json(now, true)),
            None => Reply::permission_denied(),
        },
        ("lookup", Operation::Read | Operation::Write) => {
            let token = req.data.get("token").and_then(Value::as_str).unwrap_or("");
            if token.is_empty() {
                return Reply::bad_request("missing token");
            }
            match store.get(token) {
                Some(entry) => Reply::ok(entry.lookup_json(now, true)),
                None => Reply::Errors(axum::http::StatusCode::FORBIDDEN, vec!["bad token".into()]),
            }
        }
        ("lookup-accessor", Operation::Write) => {
            let accessor = req.data.get("accessor").and_then(Value::as_str).unwrap_or("");
            match store.by_accessor(accessor) {
                Some(entry) => Reply::ok(entry.lookup_json(now, false)),
                None => Reply::bad_request("invalid accessor"),
            }
        }
        ("renew-self", Operation::Write) => match store.get(&req.client_token) {
            // Only non-renewable tokens exist so far (root has no TTL);
            // renewal arrives with token creation.
            Some(entry) if !entry.renewable => Reply::bad_request("lease is not renewable"),
            _ => Reply::unsupported_operation(),
        },
        ("lookup-self" | "lookup" | "lookup-accessor" | "renew-self", _) => Reply::unsupported_operation(),
        _ => Reply::unsupported_path(),
    }
}
