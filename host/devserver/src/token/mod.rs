//! The token store: every token, its lineage, its lifetime and its uses.
//!
//! Every authenticated request is checked against this store before it is
//! routed, so it lives beside the mount table rather than inside it. A token
//! records what Vault's token entry records: accessor, policies, parent,
//! TTL settings (ttl, explicit max, period, the issuing role's max), uses
//! left and the mount that issued it (whose tuned TTLs bound renewals).
//! Tokens form a tree through `parent`; revoking one revokes its subtree, and
//! [`State::revoke_tokens`] also revokes the leases those tokens created and
//! empties their cubbyholes, as Vault does. The endpoints are in [`api`].

mod api;

pub(crate) use api::{auth_reply, handle, string_list};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::Rng;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::State;
use super::leases::PendingRevocation;
use super::mounts::Engine;
use super::util::rfc3339;

/// One token. The id is the secret; everything else may be shown.
pub(crate) struct TokenEntry {
    pub id: String,
    pub accessor: String,
    /// What it was created with; uses count down and `parent` is cleared
    /// when the parent is revoked alone.
    pub settings: TokenSettings,
    pub creation_time: OffsetDateTime,
    pub expire_time: Option<OffsetDateTime>,
    pub last_renewal: Option<OffsetDateTime>,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: &'static str,
}

/// What a new token needs; the store adds id, accessor and times.
#[derive(Default)]
pub(crate) struct TokenSpec {
    /// A caller-chosen id (root only); empty for a random one.
    pub id: String,
    pub settings: TokenSettings,
    /// Whether it may be renewed (a token that never expires cannot be).
    pub renewable: bool,
}

/// What the creator of a token decides, kept as the token's own.
#[derive(Default)]
pub(crate) struct TokenSettings {
    /// Sorted, de-duplicated, lower case.
    pub policies: Vec<String>,
    pub display_name: String,
    /// The path that created it (`auth/token/root` for the root token).
    pub path: String,
    /// The mount that issued it (`auth/token/`, `auth/approle/`): its tuned
    /// TTLs bound renewals.
    pub mount: String,
    pub meta: Option<BTreeMap<String, String>>,
    /// The TTL it was created with, as [`super::ttl::calculate_ttl`]
    /// decided it (seconds; 0: never expires).
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    /// The issuing role's max TTL (0: the mount's).
    pub role_max_ttl: u64,
    /// Uses left; 0 means unlimited.
    pub num_uses: u64,
    /// Parent token id; `None` for orphans (the root token is one).
    pub parent: Option<String>,
}

impl TokenEntry {
    /// Seconds left (0 for tokens that never expire).
    pub fn ttl_left(&self, now: OffsetDateTime) -> u64 {
        self.expire_time.map_or(0, |at| (at - now).whole_seconds().max(0) as u64)
    }

    /// What the lookup endpoints answer; `show_id` is false for lookups by
    /// accessor, which must not reveal the token.
    pub fn lookup_json(&self, now: OffsetDateTime, show_id: bool) -> Value {
        let settings = &self.settings;
        let mut out = json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time.unix_timestamp(),
            "creation_ttl": settings.ttl,
            "display_name": settings.display_name,
            "entity_id": self.entity_id,
            "expire_time": self.expire_time.map(rfc3339),
            "explicit_max_ttl": settings.explicit_max_ttl,
            "id": if show_id { self.id.as_str() } else { "" },
            "identity_policies": [],
            "issue_time": rfc3339(self.creation_time),
            "meta": settings.meta,
            "num_uses": settings.num_uses,
            "orphan": settings.parent.is_none(),
            "path": settings.path,
            "policies": settings.policies,
            "renewable": self.renewable,
            "ttl": self.ttl_left(now),
            "type": self.token_type,
        });
        if settings.period > 0 {
            out["period"] = json!(settings.period);
        }
        if let Some(at) = self.last_renewal {
            out["last_renewal"] = json!(rfc3339(at));
            out["last_renewal_time"] = json!(at.unix_timestamp());
        }
        out
    }

    /// The `auth` block of create, login and renew answers (token.json).
    pub fn auth_json(&self, now: OffsetDateTime, show_id: bool) -> Value {
        let settings = &self.settings;
        json!({
            "client_token": if show_id { self.id.as_str() } else { "" },
            "accessor": self.accessor,
            "policies": settings.policies,
            "token_policies": settings.policies,
            "metadata": settings.meta,
            "lease_duration": self.ttl_left(now),
            "renewable": self.renewable,
            "entity_id": self.entity_id,
            "token_type": self.token_type,
            "orphan": settings.parent.is_none(),
            "mfa_requirement": null,
            "num_uses": settings.num_uses,
        })
    }

    fn live(&self, now: OffsetDateTime) -> bool {
        self.expire_time.is_none_or(|at| at > now)
    }
}

/// All tokens, by id, with an accessor index.
pub(crate) struct TokenStore {
    tokens: HashMap<String, TokenEntry>,
    accessors: HashMap<String, String>,
}

/// What using a token for one request tells the request pipeline.
pub(crate) struct TokenUse {
    pub accessor: String,
    pub policies: Vec<String>,
    /// That was its last use: revoke it once the request is answered.
    pub exhausted: bool,
}

impl TokenStore {
    /// A store holding only the root token.
    pub fn with_root(root_token: &str, now: OffsetDateTime) -> Self {
        let mut store = Self { tokens: HashMap::new(), accessors: HashMap::new() };
        let spec = TokenSpec {
            id: root_token.to_owned(),
            settings: TokenSettings {
                policies: vec!["root".into()],
                display_name: "root".into(),
                path: "auth/token/root".into(),
                mount: "auth/token/".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        store.create(spec, now);
        store
    }

    /// Store a new token; `spec.settings.ttl` 0 means it never expires.
    pub fn create(&mut self, spec: TokenSpec, now: OffsetDateTime) -> &TokenEntry {
        let id = if spec.id.is_empty() { random_token_id() } else { spec.id };
        let accessor = random_id(24);
        let ttl = spec.settings.ttl;
        let entry = TokenEntry {
            id: id.clone(),
            accessor: accessor.clone(),
            settings: spec.settings,
            creation_time: now,
            expire_time: (ttl > 0).then(|| now + time::Duration::seconds(ttl as i64)),
            last_renewal: None,
            renewable: spec.renewable && ttl > 0,
            entity_id: String::new(),
            token_type: "service",
        };
        self.accessors.insert(accessor, id.clone());
        self.tokens.entry(id).insert_entry(entry).into_mut()
    }

    /// Whether a token with this id exists, expired or not.
    pub fn contains(&self, id: &str) -> bool {
        self.tokens.contains_key(id)
    }

    /// The token with this id, if it exists and has not expired.
    pub fn get(&self, id: &str, now: OffsetDateTime) -> Option<&TokenEntry> {
        self.tokens.get(id).filter(|t| t.live(now))
    }

    pub fn get_mut(&mut self, id: &str, now: OffsetDateTime) -> Option<&mut TokenEntry> {
        self.tokens.get_mut(id).filter(|t| t.live(now))
    }

    /// The live token with this accessor.
    pub fn by_accessor(&self, accessor: &str, now: OffsetDateTime) -> Option<&TokenEntry> {
        self.accessors.get(accessor).and_then(|id| self.get(id, now))
    }

    /// Every accessor, for `LIST auth/token/accessors`.
    pub fn accessors(&self) -> impl Iterator<Item = &String> {
        self.accessors.keys()
    }

    /// Spend one use of a live token, as every authenticated request does.
    pub fn use_token(&mut self, id: &str, now: OffsetDateTime) -> Option<TokenUse> {
        let entry = self.get_mut(id, now)?;
        let exhausted = match entry.settings.num_uses {
            0 => false,
            1 => true,
            n => {
                entry.settings.num_uses = n - 1;
                false
            }
        };
        Some(TokenUse { accessor: entry.accessor.clone(), policies: entry.settings.policies.clone(), exhausted })
    }

    /// Remove `id` and every descendant; answer the removed accessors.
    fn remove_tree(&mut self, id: &str) -> Vec<String> {
        if !self.tokens.contains_key(id) {
            return Vec::new();
        }
        let mut doomed = BTreeSet::from([id.to_owned()]);
        loop {
            let children: Vec<String> = self
                .tokens
                .values()
                .filter(|t| t.settings.parent.as_ref().is_some_and(|p| doomed.contains(p)) && !doomed.contains(&t.id))
                .map(|t| t.id.clone())
                .collect();
            if children.is_empty() {
                break;
            }
            doomed.extend(children);
        }
        doomed.iter().filter_map(|id| self.remove_one(id)).collect()
    }

    /// Remove one token; its children become orphans.
    fn remove_orphaning(&mut self, id: &str) -> Option<String> {
        for child in self.tokens.values_mut().filter(|t| t.settings.parent.as_deref() == Some(id)) {
            child.settings.parent = None;
        }
        self.remove_one(id)
    }

    fn remove_one(&mut self, id: &str) -> Option<String> {
        let entry = self.tokens.remove(id)?;
        self.accessors.remove(&entry.accessor);
        Some(entry.accessor)
    }

    /// Ids of tokens whose time is up.
    pub fn expired(&self, now: OffsetDateTime) -> Vec<String> {
        self.tokens.values().filter(|t| !t.live(now)).map(|t| t.id.clone()).collect()
    }

    /// The earliest expiry of any token.
    pub fn next_expiry(&self) -> Option<OffsetDateTime> {
        self.tokens.values().filter_map(|t| t.expire_time).min()
    }

    /// Ids of tokens issued by a mount (for disabling an auth method).
    pub fn issued_by(&self, mount: &str) -> Vec<String> {
        self.tokens.values().filter(|t| t.settings.mount == mount).map(|t| t.id.clone()).collect()
    }
}

impl State {
    /// Revoke a token and its children; also their leases (answered for the
    /// caller to run outside the lock) and their cubbyholes.
    pub fn revoke_token_tree(&mut self, id: &str) -> Vec<PendingRevocation> {
        let accessors = self.tokens.remove_tree(id);
        self.after_token_removal(&accessors)
    }

    /// Revoke one token only; its children become orphans.
    pub fn revoke_token_orphaning(&mut self, id: &str) -> Vec<PendingRevocation> {
        let accessors: Vec<String> = self.tokens.remove_orphaning(id).into_iter().collect();
        self.after_token_removal(&accessors)
    }

    fn after_token_removal(&mut self, accessors: &[String]) -> Vec<PendingRevocation> {
        if accessors.is_empty() {
            return Vec::new();
        }
        if let Some(Engine::Cubbyhole(per_token)) = self.mounts.get_mut("cubbyhole/").map(|m| &mut m.engine) {
            for accessor in accessors {
                per_token.remove(accessor);
            }
        }
        tracing::debug!(count = accessors.len(), "vault dev server: tokens revoked");
        self.leases.begin_revoke_for_tokens(accessors)
    }
}

/// A service token id in Vault's style: `hvs.` and random characters.
pub(crate) fn random_token_id() -> String {
    format!("hvs.{}", random_id(24))
}

/// Random letters and digits (accessors, token bodies).
pub(crate) fn random_id(len: usize) -> String {
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(len).map(char::from).collect()
}

/// Vault's policy list hygiene: trimmed, lower case, de-duplicated, sorted,
/// `default` added unless asked not to or the list holds `root`.
pub(crate) fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut set: BTreeSet<String> =
        policies.iter().map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
    if add_default && !set.contains("root") {
        set.insert("default".into());
    }
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(parent: Option<&str>, ttl: u64) -> TokenSpec {
        let settings = TokenSettings {
            policies: vec!["default".into()],
            parent: parent.map(str::to_owned),
            ttl,
            ..Default::default()
        };
        TokenSpec { settings, ..Default::default() }
    }

    #[test]
    fn devserver_tokens_revoke_as_a_tree_and_expire() {
        let now = OffsetDateTime::now_utc();
        let mut store = TokenStore::with_root("root", now);
        let a = store.create(spec(Some("root"), 60), now).id.clone();
        let b = store.create(spec(Some(&a), 60), now).id.clone();
        let c = store.create(spec(Some(&b), 1), now).id.clone();
        let loner = store.create(spec(None, 60), now).id.clone();
        assert!(store.get(&c, now).is_some());
        assert!(store.get(&c, now + time::Duration::seconds(2)).is_none(), "expired tokens are gone");
        assert_eq!(store.expired(now + time::Duration::seconds(2)), std::slice::from_ref(&c));
        assert_eq!(store.remove_tree(&a).len(), 3);
        assert!(!store.contains(&b) && !store.contains(&c) && store.contains(&loner) && store.contains("root"));
    }

    #[test]
    fn devserver_num_uses_count_down() {
        let now = OffsetDateTime::now_utc();
        let mut store = TokenStore::with_root("root", now);
        let id = store
            .create(
                TokenSpec {
                    settings: TokenSettings { num_uses: 2, ttl: 60, ..Default::default() },
                    ..Default::default()
                },
                now,
            )
            .id
            .clone();
        assert!(!store.use_token(&id, now).unwrap().exhausted);
        assert!(store.use_token(&id, now).unwrap().exhausted);
        assert!(store.use_token("root", now).is_some_and(|u| !u.exhausted && u.policies == ["root"]));
        assert_eq!(sanitize_policies(&["Web".into(), "web".into(), " ".into()], true), ["default", "web"]);
        assert_eq!(sanitize_policies(&["root".into()], true), ["root"]);
    }
}
