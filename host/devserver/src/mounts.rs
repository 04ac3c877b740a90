//! The mount table: which engine answers which path prefix.
//!
//! Vault routes every request by the longest mount path that prefixes it
//! (`secret/`, `team/kv/`, `auth/token/`), so the table is a map from mount
//! path to [`MountEntry`], and each entry owns its engine's data in
//! [`Engine`]. Adding an engine (database, AppRole, transit) means adding a
//! variant and its handler; routing, listing and sys/mounts need no change.
//! The database engine ([`super::database`]) is one such variant.
//! Secret engines and auth methods share the table, told apart by [`Table`],
//! because Vault lists them separately (sys/mounts, sys/auth) but routes them
//! the same way.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::auth::{approle::AppRole, jwt::JwtAuth, kubernetes::KubeAuth, userpass::UserPass};
use super::database::Database;
use super::kv1::KvV1;
use super::kv2::KvV2;
use super::random_hex8;
use super::response::Reply;
use super::util::{parse_duration, weak_bool};

/// Vault's system-wide default and maximum lease TTL (768h).
pub(crate) const SYSTEM_DEFAULT_LEASE_TTL: u64 = 2_764_800;

/// Paths no one may mount at or below (Vault's `protectedMounts`).
const PROTECTED: [&str; 5] = ["audit/", "auth/", "sys/", "cubbyhole/", "identity/"];

/// Vault's builtin secret engine types. Any of them can be mounted; kv and
/// database are implemented, the rest answer "unsupported path".
const BUILTIN_TYPES: [&str; 17] = [
    "aws",
    "azure",
    "consul",
    "database",
    "gcp",
    "gcpkms",
    "kmip",
    "kubernetes",
    "ldap",
    "mongodbatlas",
    "nomad",
    "openldap",
    "pki",
    "rabbitmq",
    "ssh",
    "totp",
    "transit",
];

/// Which of Vault's two mount lists an entry belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// Listed by sys/mounts.
    Secrets,
    /// Listed by sys/auth; its path starts with `auth/`.
    Auth,
}

/// An engine and its data.
pub(crate) enum Engine {
    /// `sys/`: answered by [`super::sys`] before the table is consulted.
    System,
    /// `auth/token/`: answered by [`super::token`].
    Token,
    Identity,
    /// Per-token private storage, keyed by token accessor.
    Cubbyhole(BTreeMap<String, KvV1>),
    KvV1(KvV1),
    KvV2(KvV2),
    /// Auth methods (under `auth/`), answered by [`super::auth`].
    AppRole(Box<AppRole>),
    Jwt(Box<JwtAuth>),
    Kubernetes(Box<KubeAuth>),
    UserPass(Box<UserPass>),
    /// The database secrets engine (PostgreSQL), answered by
    /// [`super::database`].
    Database(Box<Database>),
    /// Mounted and listed, but the dev server has no implementation.
    Unimplemented,
}

/// A mount's tunable settings. TTLs are seconds; 0 means the system default.
#[derive(Default)]
pub(crate) struct MountConfig {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    pub force_no_cache: bool,
    /// Settings the dev server only stores and reports back
    /// (passthrough_request_headers, listing_visibility, ...).
    pub extras: Map<String, Value>,
}

/// Config keys that are echoed back but have no effect here.
pub(super) const CONFIG_EXTRAS: [&str; 6] = [
    "audit_non_hmac_request_keys",
    "audit_non_hmac_response_keys",
    "listing_visibility",
    "passthrough_request_headers",
    "allowed_response_headers",
    "token_type",
];

impl MountConfig {
    /// Read the `config` object of an enable or tune request.
    pub fn update_from(&mut self, config: &Map<String, Value>) -> Result<(), String> {
        if let Some(v) = config.get("default_lease_ttl") {
            self.default_lease_ttl = parse_duration(v)?.as_secs();
        }
        if let Some(v) = config.get("max_lease_ttl") {
            self.max_lease_ttl = parse_duration(v)?.as_secs();
        }
        if let Some(v) = config.get("force_no_cache") {
            self.force_no_cache = weak_bool(v).ok_or("force_no_cache must be a boolean")?;
        }
        for key in CONFIG_EXTRAS {
            match config.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(v) => {
                    self.extras.insert(key.to_owned(), v.clone());
                }
            }
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("default_lease_ttl".into(), json!(self.default_lease_ttl));
        out.insert("force_no_cache".into(), json!(self.force_no_cache));
        out.insert("max_lease_ttl".into(), json!(self.max_lease_ttl));
        for (k, v) in &self.extras {
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }
}

/// One mounted engine.
pub(crate) struct MountEntry {
    /// Ends with "/"; auth methods start with "auth/".
    pub path: String,
    pub table: Table,
    /// Vault's type name: "kv", "system", "token", ...
    pub type_name: String,
    pub description: String,
    pub accessor: String,
    pub uuid: String,
    pub local: bool,
    pub seal_wrap: bool,
    pub external_entropy_access: bool,
    pub config: MountConfig,
    /// kv's `{"version": "2"}`; `None` reports as null.
    pub options: Option<MountOptions>,
    pub engine: Engine,
}

impl MountEntry {
    pub fn new(path: &str, table: Table, type_name: &str, description: &str, engine: Engine) -> Self {
        let accessor_kind = match table {
            Table::Secrets => type_name.to_owned(),
            Table::Auth => format!("auth_{type_name}"),
        };
        Self {
            path: path.to_owned(),
            table,
            type_name: type_name.to_owned(),
            description: description.to_owned(),
            accessor: format!("{accessor_kind}_{}", random_hex8()),
            uuid: uuid::Uuid::new_v4().to_string(),
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
            config: MountConfig::default(),
            options: None,
            engine,
        }
    }

    /// The `mount_type` the envelope reports for answers from this engine.
    pub fn mount_type(&self) -> &'static str {
        match self.engine {
            Engine::System => "system",
            Engine::Token => "token",
            Engine::Identity => "identity",
            Engine::Cubbyhole(_) => "cubbyhole",
            Engine::KvV1(_) | Engine::KvV2(_) => "kv",
            Engine::AppRole(_) => "approle",
            Engine::Jwt(_) => "jwt",
            Engine::Kubernetes(_) => "kubernetes",
            Engine::UserPass(_) => "userpass",
            Engine::Database(_) => "database",
            Engine::Unimplemented => "",
        }
    }

    /// The default lease TTL in force: the mount's, else the system's.
    pub fn effective_default_lease_ttl(&self) -> u64 {
        if self.config.default_lease_ttl == 0 { SYSTEM_DEFAULT_LEASE_TTL } else { self.config.default_lease_ttl }
    }

    /// The maximum lease TTL in force.
    pub fn effective_max_lease_ttl(&self) -> u64 {
        if self.config.max_lease_ttl == 0 { SYSTEM_DEFAULT_LEASE_TTL } else { self.config.max_lease_ttl }
    }

    fn is_core(&self) -> bool {
        matches!(self.engine, Engine::System | Engine::Token | Engine::Identity | Engine::Cubbyhole(_))
    }

    /// The entry as sys/mounts and sys/mounts/:path show it.
    pub fn info_json(&self) -> Value {
        let running = if self.is_core() {
            "v1.16.0+builtin.vault"
        } else if self.type_name == "kv" {
            "v0.17.0+builtin"
        } else {
            "v1.16.0+builtin"
        };
        let mut info = json!({
            "accessor": self.accessor,
            "config": self.config.to_json(),
            "description": self.description,
            "external_entropy_access": self.external_entropy_access,
            "local": self.local,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": running,
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.type_name,
            "uuid": self.uuid,
        });
        if !self.is_core() {
            info["deprecation_status"] = json!("supported");
        }
        info
    }

    /// The entry as sys/mounts/:path/tune shows it: effective TTLs.
    pub fn tune_json(&self) -> Value {
        let mut tune = json!({
            "default_lease_ttl": self.effective_default_lease_ttl(),
            "max_lease_ttl": self.effective_max_lease_ttl(),
            "force_no_cache": self.config.force_no_cache,
            "description": self.description,
        });
        if let Some(options) = &self.options {
            tune["options"] = json!(options);
        }
        for (k, v) in &self.config.extras {
            tune[k] = v.clone();
        }
        tune
    }
}

/// A mount's `options` (kv's `{"version": "2"}`).
pub(crate) type MountOptions = BTreeMap<String, String>;

/// Turn a requested engine type and options into what gets mounted:
/// `kv-v2` is kv with version "2", kv's version picks the engine.
pub(crate) fn engine_for(
    type_name: &str,
    mut options: Option<MountOptions>,
) -> Result<(String, Option<MountOptions>, Engine), Reply> {
    let kv_version = |options: &mut Option<MountOptions>, version: &str| {
        options.get_or_insert_with(BTreeMap::new).insert("version".into(), version.into());
    };
    let engine = match type_name {
        "kv-v1" => {
            kv_version(&mut options, "1");
            Engine::KvV1(KvV1::default())
        }
        "kv-v2" => {
            kv_version(&mut options, "2");
            Engine::KvV2(KvV2::default())
        }
        "kv" => match options.as_ref().and_then(|o| o.get("version")).map(String::as_str) {
            None | Some("") | Some("1") => Engine::KvV1(KvV1::default()),
            Some("2") => Engine::KvV2(KvV2::default()),
            Some(other) => {
                return Err(Reply::bad_request(format!("invalid kv version {other:?}: must be \"1\" or \"2\"")));
            }
        },
        "system" | "token" | "cubbyhole" | "identity" => {
            return Err(Reply::bad_request(format!("mount type of {type_name:?} is not mountable")));
        }
        other if BUILTIN_TYPES.contains(&other) => {
            if options.as_ref().is_some_and(|o| o.get("version").is_some_and(|v| !v.is_empty())) {
                return Err(Reply::bad_request(format!("secrets engine {other:?} does not allow setting a version")));
            }
            if other == "database" { Engine::Database(Box::default()) } else { Engine::Unimplemented }
        }
        other => {
            return Err(Reply::bad_request(format!("plugin not found in the catalog: {other}")));
        }
    };
    let type_name = if type_name.starts_with("kv") { "kv" } else { type_name };
    Ok((type_name.to_owned(), options, engine))
}

/// All mounts, keyed by path.
pub(crate) struct MountTable {
    entries: BTreeMap<String, MountEntry>,
}

impl MountTable {
    /// What `vault server -dev` starts with: sys/, cubbyhole/, identity/,
    /// secret/ as kv version 2, and the token auth method.
    pub fn with_defaults() -> Self {
        let mut sys = MountEntry::new(
            "sys/",
            Table::Secrets,
            "system",
            "system endpoints used for control, policy and debugging",
            Engine::System,
        );
        sys.config.extras.insert("passthrough_request_headers".into(), json!(["Accept"]));
        let mut cubbyhole = MountEntry::new(
            "cubbyhole/",
            Table::Secrets,
            "cubbyhole",
            "per-token private secret storage",
            Engine::Cubbyhole(BTreeMap::new()),
        );
        cubbyhole.local = true;
        let identity = MountEntry::new("identity/", Table::Secrets, "identity", "identity store", Engine::Identity);
        let mut secret =
            MountEntry::new("secret/", Table::Secrets, "kv", "key/value secret storage", Engine::KvV2(KvV2::default()));
        secret.options = Some(BTreeMap::from([("version".to_owned(), "2".to_owned())]));
        let token = MountEntry::new("auth/token/", Table::Auth, "token", "token based credentials", Engine::Token);

        let entries = [sys, cubbyhole, identity, secret, token].into_iter().map(|e| (e.path.clone(), e)).collect();
        Self { entries }
    }

    /// The mount path that routes `path`: the longest one prefixing it.
    pub fn matching(&self, path: &str) -> Option<&str> {
        self.entries.keys().filter(|m| path.starts_with(m.as_str())).max_by_key(|m| m.len()).map(String::as_str)
    }

    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        self.entries.get(path)
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut MountEntry> {
        self.entries.get_mut(path)
    }

    /// The entries of one table, in path order.
    pub fn list(&self, table: Table) -> impl Iterator<Item = &MountEntry> {
        self.entries.values().filter(move |e| e.table == table)
    }

    /// Mount a new engine, refusing protected paths and overlaps.
    pub fn enable(&mut self, entry: MountEntry) -> Result<(), Reply> {
        let path = entry.path.clone();
        if path == "/" || path.is_empty() {
            return Err(Reply::bad_request("backend path must be specified"));
        }
        if entry.table == Table::Secrets && PROTECTED.iter().any(|p| path.starts_with(p)) {
            return Err(Reply::Errors(axum::http::StatusCode::FORBIDDEN, vec![format!("cannot mount {path:?}")]));
        }
        let overlap =
            self.entries.keys().find(|existing| path.starts_with(existing.as_str()) || existing.starts_with(&path));
        if let Some(existing) = overlap {
            return Err(Reply::bad_request(format!("path is already in use at {existing}")));
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Unmount; unknown paths succeed (Vault does not reveal what existed).
    pub fn disable(&mut self, path: &str) -> Result<(), Reply> {
        if matches!(path, "sys/" | "cubbyhole/" | "identity/" | "auth/token/") {
            return Err(Reply::bad_request(format!("cannot unmount {path:?}")));
        }
        self.entries.remove(path);
        Ok(())
    }
}

/// Vault's mount-path normalisation: no leading "/", one trailing "/".
pub(crate) fn normalize_mount_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() { String::new() } else { format!("{trimmed}/") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut table = MountTable::with_defaults();
        table.enable(MountEntry::new("team/kv/", Table::Secrets, "kv", "", Engine::KvV1(KvV1::default()))).ok();
        assert_eq!(table.matching("team/kv/foo"), Some("team/kv/"));
        assert_eq!(table.matching("secret/data/x"), Some("secret/"));
        assert_eq!(table.matching("secretx/data"), None);
        assert!(table.enable(MountEntry::new("team/", Table::Secrets, "kv", "", Engine::Unimplemented)).is_err());
        assert!(table.enable(MountEntry::new("sys/x/", Table::Secrets, "kv", "", Engine::Unimplemented)).is_err());
    }
}
