//! KV version 2: versioned secrets with check-and-set, soft delete,
//! undelete and destroy, on any mount of type kv with version "2".
//!
//! The model follows Vault's kv plugin, because clients depend on its exact
//! behaviour (see `shared/contracts/vault/kv2.json` and `errors.json`):
//!
//! - Each key has metadata (current and oldest version, settings, custom
//!   metadata) and a map of versions. Versions start at 1 and only grow.
//! - Writing past `max_versions` (key's or mount's, the larger; 10 if
//!   neither is set) drops the oldest versions, exactly as Vault slides its
//!   window (`oldest_version` stays 0 until the first trim).
//! - `options.cas` must equal the current version (0: the key must not
//!   exist); a mismatch is a 400, not a 412. `cas_required` on the mount or
//!   the key makes a write without `cas` a 400.
//! - Reading a deleted or destroyed version is a 404 whose body is the normal
//!   envelope with `data.data: null` and the version's metadata; reading an
//!   unknown key is a 404 with `{"errors": []}`.
//!
//! This file owns the data model, the routing of the mount's paths and
//! `data/`; [`versions`] owns `delete/`, `undelete/`, `destroy/` and
//! `subkeys/`; [`metadata`] owns `config` and `metadata/`.

mod metadata;
mod versions;

use versions::VersionAction;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::kv1::KvV1;
use super::response::{Envelope, Reply};
use super::util::{list_children, merge_patch, rfc3339, rfc3339_opt, weak_i64};
use super::{Operation, Request};

/// Versions kept per key when neither the mount nor the key says.
const DEFAULT_MAX_VERSIONS: u32 = 10;

/// The secrets and settings of one KV v2 mount.
#[derive(Default)]
pub(crate) struct KvV2 {
    config: Config,
    keys: BTreeMap<String, KeyMeta>,
}

/// Mount-wide settings (`<mount>/config`).
#[derive(Default)]
struct Config {
    max_versions: u32,
    cas_required: bool,
    delete_version_after: Duration,
}

/// One key: its settings and its versions.
struct KeyMeta {
    current_version: u64,
    oldest_version: u64,
    created_time: Option<OffsetDateTime>,
    updated_time: Option<OffsetDateTime>,
    max_versions: u32,
    cas_required: bool,
    delete_version_after: Duration,
    custom_metadata: Option<BTreeMap<String, String>>,
    versions: BTreeMap<u64, Version>,
}

/// One version. `data` is gone once destroyed.
struct Version {
    created: OffsetDateTime,
    deletion: Option<OffsetDateTime>,
    destroyed: bool,
    data: Option<Map<String, Value>>,
}

impl Version {
    /// Deleted once its deletion time has passed (a future deletion time
    /// comes from `delete_version_after` and is not a deletion yet).
    fn is_deleted(&self, now: OffsetDateTime) -> bool {
        self.deletion.is_some_and(|d| d <= now)
    }

    fn readable(&self, now: OffsetDateTime) -> bool {
        !self.destroyed && !self.is_deleted(now)
    }
}

impl KeyMeta {
    fn new(now: Option<OffsetDateTime>) -> Self {
        Self {
            current_version: 0,
            oldest_version: 0,
            created_time: now,
            updated_time: now,
            max_versions: 0,
            cas_required: false,
            delete_version_after: Duration::ZERO,
            custom_metadata: None,
            versions: BTreeMap::new(),
        }
    }

    /// Add the next version and slide the window of kept versions.
    fn add_version(&mut self, version: Version, mount_max: u32) {
        let created = version.created;
        self.current_version += 1;
        self.versions.insert(self.current_version, version);
        self.updated_time = Some(created);
        self.created_time.get_or_insert(created);
        let max = match self.max_versions.max(mount_max) {
            0 => DEFAULT_MAX_VERSIONS,
            n => n,
        };
        if self.current_version - self.oldest_version >= u64::from(max) {
            let last_to_drop = self.current_version - u64::from(max);
            self.versions.retain(|v, _| *v > last_to_drop);
            self.oldest_version = last_to_drop + 1;
        }
    }

    /// The per-version metadata every data answer carries.
    fn version_json(&self, number: u64, version: &Version) -> Value {
        json!({
            "version": number,
            "created_time": rfc3339(version.created),
            "deletion_time": rfc3339_opt(version.deletion),
            "destroyed": version.destroyed,
            "custom_metadata": self.custom_metadata,
        })
    }
}

/// When a version written at `created` expires: after the smaller non-zero
/// `delete_version_after` of the mount and the key.
fn deletion_time(created: OffsetDateTime, mount: Duration, key: Duration) -> Option<OffsetDateTime> {
    let after = [mount, key].into_iter().filter(|d| !d.is_zero()).min()?;
    Some(created + after)
}

/// A key in a data path: non-empty and not ending in "/".
fn is_key(key: &str) -> bool {
    !key.is_empty() && !key.ends_with('/')
}

impl KvV2 {
    /// A v2 mount holding a v1 mount's secrets, each as version 1: what
    /// tuning a kv mount to version 2 does.
    pub fn from_v1(v1: KvV1, now: OffsetDateTime) -> Self {
        let mut kv = Self::default();
        for (key, data) in v1.into_entries() {
            let meta = kv.keys.entry(key).or_insert_with(|| KeyMeta::new(None));
            meta.add_version(Version { created: now, deletion: None, destroyed: false, data: Some(data) }, 0);
        }
        kv
    }

    /// The existence check a write's ACL needs: a `data/` or `metadata/`
    /// write is a create when the key does not exist yet; `None` for paths
    /// without one (they count as updates).
    pub fn exists(&self, rel: &str) -> Option<bool> {
        let key = rel.strip_prefix("data/").or_else(|| rel.strip_prefix("metadata/"))?;
        Some(self.keys.contains_key(key))
    }

    /// Answer a request for `rel`, the path below the mount.
    pub fn handle(&mut self, rel: &str, req: &Request) -> Reply {
        let (op, data, now) = (req.op, &req.data, req.now);
        if rel == "config" {
            return match op {
                Operation::Read => self.read_config(),
                Operation::Write => self.write_config(data),
                _ => Reply::unsupported_operation(),
            };
        }
        if let Some(key) = rel.strip_prefix("data/").filter(|k| is_key(k)) {
            return match op {
                Operation::Read => self.read_data(key, data, now),
                Operation::Write => self.write_data(key, data, now),
                Operation::Patch => self.patch_data(key, data, now),
                Operation::Delete => self.delete_latest(key, now),
                _ => Reply::unsupported_operation(),
            };
        }
        if let Some(key) = rel.strip_prefix("metadata/") {
            return match op {
                Operation::List => Reply::list(list_children(self.keys.keys(), key)),
                Operation::Read => self.read_metadata(key),
                Operation::Write => self.write_metadata(key, data, now),
                Operation::Patch => self.patch_metadata(key, data),
                Operation::Delete => {
                    self.keys.remove(key);
                    Reply::NoContent
                }
                Operation::Head => Reply::unsupported_operation(),
            };
        }
        let actions = [
            ("delete/", VersionAction::Delete),
            ("undelete/", VersionAction::Undelete),
            ("destroy/", VersionAction::Destroy),
        ];
        for (prefix, action) in actions {
            if let Some(key) = rel.strip_prefix(prefix).filter(|k| is_key(k)) {
                return match op {
                    Operation::Write => self.version_action(key, data, now, action),
                    _ => Reply::unsupported_operation(),
                };
            }
        }
        if let Some(key) = rel.strip_prefix("subkeys/").filter(|k| is_key(k)) {
            return match op {
                Operation::Read => self.subkeys(key, data, now),
                _ => Reply::unsupported_operation(),
            };
        }
        invalid_path(rel, op)
    }

    /// `GET data/:path?version=N`.
    fn read_data(&self, key: &str, query: &Map<String, Value>, now: OffsetDateTime) -> Reply {
        let requested = match version_param(query) {
            Ok(v) => v,
            Err(reply) => return reply,
        };
        match self.readable_version(key, requested, now, "data") {
            Ok((version, metadata)) => Reply::ok(json!({ "data": version.data, "metadata": metadata })),
            Err(reply) => reply,
        }
    }

    /// Version `requested` (0: the current one) of `key` and its metadata,
    /// or the 404 Vault sends: plain for an unknown key or version, with
    /// `<field>: null` and the metadata for a deleted or destroyed one.
    fn readable_version(
        &self,
        key: &str,
        requested: u64,
        now: OffsetDateTime,
        field: &str,
    ) -> Result<(&Version, Value), Reply> {
        let meta = self.keys.get(key).ok_or_else(Reply::not_found)?;
        let number = if requested > 0 { requested } else { meta.current_version };
        let version = meta.versions.get(&number).ok_or_else(Reply::not_found)?;
        let metadata = meta.version_json(number, version);
        if !version.readable(now) {
            let body = json!({ field: null, "metadata": metadata });
            return Err(Reply::Envelope(StatusCode::NOT_FOUND, Envelope::data(body)));
        }
        Ok((version, metadata))
    }

    /// `POST/PUT data/:path` with `{"options": {"cas": N}, "data": {...}}`.
    fn write_data(&mut self, key: &str, body: &Map<String, Value>, now: OffsetDateTime) -> Reply {
        let secret = match body.get("data") {
            None | Some(Value::Null) => return Reply::bad_request("no data provided"),
            Some(Value::Object(secret)) => secret.clone(),
            Some(_) => {
                return Reply::bad_request("error converting input for field \"data\": expected a map");
            }
        };
        if let Err(reply) = self.check_cas(body, self.keys.get(key)) {
            return reply;
        }
        self.push_version(key, secret, now)
    }

    /// `PATCH data/:path`: a JSON merge patch on the current version.
    fn patch_data(&mut self, key: &str, body: &Map<String, Value>, now: OffsetDateTime) -> Reply {
        let patch = match body.get("data") {
            None => return Reply::bad_request("no data provided"),
            Some(patch @ Value::Object(_)) => patch,
            Some(_) => {
                return Reply::bad_request("error converting input for field \"data\": expected a map");
            }
        };
        let Some(meta) = self.keys.get(key) else {
            return Reply::not_found();
        };
        if let Err(reply) = self.check_cas(body, Some(meta)) {
            return reply;
        }
        let Some(current) = meta.versions.get(&meta.current_version) else {
            return Reply::not_found();
        };
        if !current.readable(now) {
            let body = meta.version_json(meta.current_version, current);
            return Reply::Envelope(StatusCode::NOT_FOUND, Envelope::data(body));
        }
        let mut merged = Value::Object(current.data.clone().unwrap_or_default());
        merge_patch(&mut merged, patch);
        let Value::Object(merged) = merged else {
            return Reply::bad_request("no data provided");
        };
        self.push_version(key, merged, now)
    }

    /// Store `secret` as the key's next version; answer its metadata.
    fn push_version(&mut self, key: &str, secret: Map<String, Value>, now: OffsetDateTime) -> Reply {
        let mount_dva = self.config.delete_version_after;
        let meta = self.keys.entry(key.to_owned()).or_insert_with(|| KeyMeta::new(None));
        let deletion = deletion_time(now, mount_dva, meta.delete_version_after);
        let version = Version { created: now, deletion, destroyed: false, data: Some(secret) };
        meta.add_version(version, self.config.max_versions);
        let number = meta.current_version;
        match meta.versions.get(&number) {
            Some(version) => Reply::ok(meta.version_json(number, version)),
            None => Reply::bad_request("version was dropped by max_versions"),
        }
    }

    /// Vault's check-and-set rules for writes and patches.
    fn check_cas(&self, body: &Map<String, Value>, meta: Option<&KeyMeta>) -> Result<(), Reply> {
        let current = meta.map_or(0, |m| m.current_version);
        let cas = body.get("options").and_then(Value::as_object).and_then(|o| o.get("cas"));
        match cas {
            Some(raw) => {
                let cas = if raw.is_null() { Some(0) } else { weak_i64(raw) };
                let Some(cas) = cas else {
                    return Err(Reply::bad_request("error parsing check-and-set parameter"));
                };
                if u64::try_from(cas).ok() != Some(current) {
                    return Err(Reply::bad_request("check-and-set parameter did not match the current version"));
                }
                Ok(())
            }
            None if self.config.cas_required || meta.is_some_and(|m| m.cas_required) => {
                Err(Reply::bad_request("check-and-set parameter required for this call"))
            }
            None => Ok(()),
        }
    }
}

/// The `version` query parameter; 0 when absent (the newest).
fn version_param(query: &Map<String, Value>) -> Result<u64, Reply> {
    match query.get("version") {
        None => Ok(0),
        Some(raw) => weak_i64(raw)
            .map(|v| u64::try_from(v).unwrap_or(0))
            .ok_or_else(|| Reply::bad_request("error converting input for field \"version\": not an integer")),
    }
}

/// Paths a v2 mount does not serve get a 404 whose warning says what to use
/// instead, as Vault's kv plugin answers.
fn invalid_path(rel: &str, op: Operation) -> Reply {
    let command = match op {
        Operation::Write => "put",
        Operation::Patch => "patch",
        Operation::Read => "get",
        Operation::List => "list",
        Operation::Delete => "delete",
        Operation::Head => return Reply::unsupported_operation(),
    };
    let warning = if matches!(rel, "data" | "metadata" | "delete" | "undelete" | "destroy") {
        "Non-listing operations on the root of a K/V v2 mount are not supported.".to_owned()
    } else {
        format!(
            "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API \
             endpoints to use. If using the Vault CLI, use 'vault kv {command}' for this operation."
        )
    };
    let mut envelope = Envelope::data(Value::Null);
    envelope.warnings.push(warning);
    Reply::Envelope(StatusCode::NOT_FOUND, envelope)
}
