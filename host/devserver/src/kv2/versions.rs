//! KV v2 operations on existing versions: soft delete (latest or listed),
//! undelete, destroy, and the `subkeys/` view of a version's shape.
//!
//! None of these create a version. Deleting marks a deletion time (undone by
//! undelete); destroying drops the data for good, and a destroyed version
//! can never be undeleted. Unknown keys and versions are skipped silently,
//! as Vault does, so these calls answer 204 either way.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::super::response::Reply;
use super::super::util::{weak_i64, weak_int_list};
use super::{KvV2, deletion_time, version_param};

/// What `POST delete|undelete|destroy/:path` does to the listed versions.
pub(super) enum VersionAction {
    Delete,
    Undelete,
    Destroy,
}

impl KvV2 {
    /// `DELETE data/:path`: soft-delete the newest version.
    pub(super) fn delete_latest(&mut self, key: &str, now: OffsetDateTime) -> Reply {
        if let Some(meta) = self.keys.get_mut(key) {
            let current = meta.current_version;
            if let Some(latest) = meta.versions.get_mut(&current)
                && !latest.destroyed
                && !latest.is_deleted(now)
            {
                latest.deletion = Some(now);
            }
        }
        Reply::NoContent
    }

    /// `POST delete|undelete|destroy/:path` with `{"versions": [..]}`.
    pub(super) fn version_action(
        &mut self,
        key: &str,
        body: &Map<String, Value>,
        now: OffsetDateTime,
        action: VersionAction,
    ) -> Reply {
        let versions = match weak_int_list(body.get("versions")) {
            Ok(v) => v,
            Err(message) => return Reply::bad_request(message),
        };
        if versions.is_empty() {
            // Vault's two spellings, kept as they are.
            return Reply::bad_request(match action {
                VersionAction::Destroy => "no version number provided",
                _ => "No version number provided",
            });
        }
        let mount_dva = self.config.delete_version_after;
        let Some(meta) = self.keys.get_mut(key) else {
            return Reply::NoContent;
        };
        let key_dva = meta.delete_version_after;
        for number in versions.into_iter().filter_map(|v| u64::try_from(v).ok()) {
            let Some(version) = meta.versions.get_mut(&number) else {
                continue;
            };
            if version.destroyed {
                continue;
            }
            match action {
                VersionAction::Delete if !version.is_deleted(now) => version.deletion = Some(now),
                VersionAction::Delete => {}
                VersionAction::Undelete => version.deletion = deletion_time(now, mount_dva, key_dva),
                VersionAction::Destroy => {
                    version.destroyed = true;
                    version.data = None;
                }
            }
        }
        Reply::NoContent
    }

    /// `GET subkeys/:path?version=N&depth=D`: the secret's shape, leaves null.
    pub(super) fn subkeys(&self, key: &str, query: &Map<String, Value>, now: OffsetDateTime) -> Reply {
        let requested = match version_param(query) {
            Ok(v) => v,
            Err(reply) => return reply,
        };
        let depth = match query.get("depth").map(weak_i64) {
            None => 0,
            Some(Some(d)) if d >= 0 => d as u64,
            Some(_) => return Reply::bad_request("depth must be a non-negative integer"),
        };
        let (version, metadata) = match self.readable_version(key, requested, now, "subkeys") {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let shape = strip_values(version.data.as_ref().unwrap_or(&Map::new()), depth, 1);
        Reply::ok(json!({ "subkeys": shape, "metadata": metadata }))
    }
}

/// Replace leaves by null, descending `depth` levels (0: all the way).
fn strip_values(map: &Map<String, Value>, depth: u64, level: u64) -> Value {
    let out = map.iter().map(|(k, v)| {
        let value = match v {
            Value::Object(inner) if depth == 0 || level < depth => strip_values(inner, depth, level + 1),
            _ => Value::Null,
        };
        (k.clone(), value)
    });
    Value::Object(out.collect())
}
