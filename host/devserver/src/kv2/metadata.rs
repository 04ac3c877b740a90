//! KV v2 settings: the mount's `config` and each key's `metadata/`.
//!
//! Metadata writes never create a version. A metadata write for a key that
//! does not exist yet creates an empty key (current_version 0), which a
//! `cas: 0` write can then fill, as in Vault. `custom_metadata` is checked
//! with Vault's limits (64 keys, keys up to 128 bytes, values up to 512) and
//! its error wording, since clients surface those messages.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::super::response::{Reply, multierror_list};
use super::super::util::{go_duration, parse_duration, rfc3339, rfc3339_opt, weak_bool, weak_i64, weak_string};
use super::{KeyMeta, KvV2};

const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;
const CUSTOM_PREFIX: &str = "custom_metadata validation failed";

/// Warning Vault gives when a key asks for less than the mount enforces.
const CAS_IGNORED: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

impl KvV2 {
    /// `GET config`.
    pub(super) fn read_config(&self) -> Reply {
        Reply::ok(json!({
            "cas_required": self.config.cas_required,
            "delete_version_after": go_duration(self.config.delete_version_after),
            "max_versions": self.config.max_versions,
        }))
    }

    /// `POST config`: only the fields given change.
    pub(super) fn write_config(&mut self, body: &Map<String, Value>) -> Reply {
        let settings = match Settings::parse(body) {
            Ok(s) => s,
            Err(reply) => return reply,
        };
        if let Some(max) = settings.max_versions {
            self.config.max_versions = max;
        }
        if let Some(cas) = settings.cas_required {
            self.config.cas_required = cas;
        }
        if let Some(dva) = settings.delete_version_after {
            self.config.delete_version_after = dva;
        }
        Reply::NoContent
    }

    /// `GET metadata/:path`.
    pub(super) fn read_metadata(&self, key: &str) -> Reply {
        let Some(meta) = self.keys.get(key) else {
            return Reply::not_found();
        };
        let versions: Map<String, Value> = meta
            .versions
            .iter()
            .map(|(number, v)| {
                let info = json!({
                    "created_time": rfc3339(v.created),
                    "deletion_time": rfc3339_opt(v.deletion),
                    "destroyed": v.destroyed,
                });
                (number.to_string(), info)
            })
            .collect();
        Reply::ok(json!({
            "cas_required": meta.cas_required,
            "created_time": rfc3339_opt(meta.created_time),
            "current_version": meta.current_version,
            "custom_metadata": meta.custom_metadata,
            "delete_version_after": go_duration(meta.delete_version_after),
            "max_versions": meta.max_versions,
            "oldest_version": meta.oldest_version,
            "updated_time": rfc3339_opt(meta.updated_time),
            "versions": versions,
        }))
    }

    /// `POST metadata/:path`: set the key's settings, creating the key.
    pub(super) fn write_metadata(&mut self, key: &str, body: &Map<String, Value>, now: OffsetDateTime) -> Reply {
        let (settings, custom) = match parse_metadata_body(key, body, false) {
            Ok((settings, custom)) => (settings, custom.flatten().map(|(set, _)| set)),
            Err(reply) => return reply,
        };
        if settings.is_empty() && custom.is_none() {
            return Reply::NoContent;
        }
        let warnings = self.cas_warning(&settings);
        let meta = self.keys.entry(key.to_owned()).or_insert_with(|| KeyMeta::new(Some(now)));
        settings.apply(meta);
        if let Some(custom) = custom {
            meta.custom_metadata = Some(custom);
        }
        Reply::done(warnings)
    }

    /// `PATCH metadata/:path`: a merge patch of the settings; a null
    /// custom_metadata value removes that entry.
    pub(super) fn patch_metadata(&mut self, key: &str, body: &Map<String, Value>) -> Reply {
        let (settings, custom) = match parse_metadata_body(key, body, true) {
            Ok(parsed) => parsed,
            Err(reply) => return reply,
        };
        let warnings = self.cas_warning(&settings);
        let Some(meta) = self.keys.get_mut(key) else {
            return Reply::not_found();
        };
        settings.apply(meta);
        match custom {
            None => {}
            Some(None) => meta.custom_metadata = None,
            Some(Some((set, removed))) => {
                let merged = meta.custom_metadata.get_or_insert_with(BTreeMap::new);
                for name in removed {
                    merged.remove(&name);
                }
                merged.extend(set);
            }
        }
        Reply::done(warnings)
    }

    fn cas_warning(&self, settings: &Settings) -> Vec<String> {
        if settings.cas_required == Some(false) && self.config.cas_required {
            vec![CAS_IGNORED.to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// The settings shared by `config` and `metadata/`; `None` means not given.
#[derive(Default)]
struct Settings {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    delete_version_after: Option<std::time::Duration>,
}

impl Settings {
    fn parse(body: &Map<String, Value>) -> Result<Self, Reply> {
        let field_error =
            |name: &str, why: &str| Reply::bad_request(format!("error converting input for field {name:?}: {why}"));
        let mut settings = Settings::default();
        if let Some(raw) = body.get("max_versions").filter(|v| !v.is_null()) {
            let max = weak_i64(raw).and_then(|n| u32::try_from(n).ok());
            settings.max_versions = Some(max.ok_or_else(|| field_error("max_versions", "not a non-negative integer"))?);
        }
        if let Some(raw) = body.get("cas_required").filter(|v| !v.is_null()) {
            settings.cas_required = Some(weak_bool(raw).ok_or_else(|| field_error("cas_required", "not a boolean"))?);
        }
        if let Some(raw) = body.get("delete_version_after").filter(|v| !v.is_null()) {
            let dva = parse_duration(raw).map_err(|why| field_error("delete_version_after", &why))?;
            settings.delete_version_after = Some(dva);
        }
        Ok(settings)
    }

    fn is_empty(&self) -> bool {
        self.max_versions.is_none() && self.cas_required.is_none() && self.delete_version_after.is_none()
    }

    fn apply(&self, meta: &mut KeyMeta) {
        if let Some(max) = self.max_versions {
            meta.max_versions = max;
        }
        if let Some(cas) = self.cas_required {
            meta.cas_required = cas;
        }
        if let Some(dva) = self.delete_version_after {
            meta.delete_version_after = dva;
        }
    }
}

/// The entries to set and, when `nulls_remove`, the names to remove.
type CustomUpdate = (BTreeMap<String, String>, Vec<String>);

/// The key and body of a metadata write (`patch` false) or patch: the
/// settings and, when given, the `custom_metadata` update (`Some(None)`: a
/// patch's null, which removes it all).
fn parse_metadata_body(
    key: &str,
    body: &Map<String, Value>,
    patch: bool,
) -> Result<(Settings, Option<Option<CustomUpdate>>), Reply> {
    if key.is_empty() {
        return Err(Reply::bad_request("missing path"));
    }
    let settings = Settings::parse(body)?;
    let custom = match body.get("custom_metadata") {
        None => None,
        Some(Value::Null) if patch => Some(None),
        Some(raw) => Some(Some(parse_custom(raw, patch)?)),
    };
    Ok((settings, custom))
}

/// Decode and check `custom_metadata` as Vault does.
fn parse_custom(raw: &Value, nulls_remove: bool) -> Result<CustomUpdate, Reply> {
    let Value::Object(raw) = raw else {
        return Err(Reply::bad_request(format!("{CUSTOM_PREFIX}: expected a map of strings")));
    };
    let mut set = BTreeMap::new();
    let mut removed = Vec::new();
    for (name, value) in raw {
        if nulls_remove && value.is_null() {
            removed.push(name.clone());
            continue;
        }
        let value = weak_string(value)
            .ok_or_else(|| Reply::bad_request(format!("{CUSTOM_PREFIX}: value for key {name:?} is not a string")))?;
        set.insert(name.clone(), value);
    }
    if set.len() > MAX_CUSTOM_KEYS {
        let message =
            format!("{CUSTOM_PREFIX}: payload must contain at most {MAX_CUSTOM_KEYS} keys, provided {}", set.len());
        return Err(Reply::bad_request(multierror_list(&[message])));
    }
    let mut errors = Vec::new();
    for (name, value) in &set {
        if name.is_empty() || name.len() > MAX_CUSTOM_KEY_LEN {
            errors.push(format!(
                "{CUSTOM_PREFIX}: length of key {name:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_LEN}",
                name.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_CUSTOM_VALUE_LEN {
            errors.push(format!(
                "{CUSTOM_PREFIX}: length of value for key {name:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_VALUE_LEN}",
                value.len()
            ));
        }
        if name.chars().any(char::is_control) {
            errors.push(format!("{CUSTOM_PREFIX}: key {name:?} contains unprintable characters"));
        }
        if value.chars().any(char::is_control) {
            errors.push(format!("{CUSTOM_PREFIX}: value for key {name:?} contains unprintable characters"));
        }
    }
    if errors.is_empty() { Ok((set, removed)) } else { Err(Reply::bad_request(multierror_list(&errors))) }
}
