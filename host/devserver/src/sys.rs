//! The `sys/` endpoints: health, seal status, and the mount table.
//!
//! sys/health, sys/seal-status, sys/leader and sys/init answer without a
//! token and without the envelope, like Vault's dedicated handlers (the
//! `vault status` command reads all of them). The rest is authenticated and
//! manages [`super::mounts`]: list, enable, read, disable (revoking the
//! mount's leases) and tune mounts, hands `sys/auth/:path` to
//! [`super::auth::mount`], and answers `sys/internal/ui/mounts/:path`,
//! which the `vault kv` commands call first to learn a mount's KV version.
//! Shapes follow
//! `shared/contracts/vault/sys.json`; sys/mounts and sys/auth answers also
//! carry `data`'s keys at the top level, as Vault's do.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::kv2::KvV2;
use super::leases::revocations_then;
use super::mounts::{CONFIG_EXTRAS, Engine, MountEntry, Table, engine_for, normalize_mount_path};
use super::response::Reply;
use super::util::{weak_bool, weak_i64, weak_string};
use super::{Handled, Operation, Request, ServerInfo, Shared, State, auth};

/// Reported as build_date / commit_date by sys/seal-status.
const BUILD_DATE: &str = "2024-03-04T17:04:22Z";

/// The endpoints Vault serves without a token; `None` for every other path.
pub(crate) fn unauthenticated(
    info: &ServerInfo,
    method: &Method,
    path: &str,
    query: &Map<String, Value>,
) -> Option<Reply> {
    let get = *method == Method::GET;
    let reply = match path {
        "sys/health" if get => health(info, query, false),
        "sys/health" if *method == Method::HEAD => health(info, query, true),
        "sys/seal-status" if get => Reply::Plain(StatusCode::OK, seal_status(info)),
        "sys/leader" if get => Reply::Plain(StatusCode::OK, leader()),
        "sys/init" if get => Reply::Plain(StatusCode::OK, json!({ "initialized": true })),
        "sys/init" if *method == Method::PUT || *method == Method::POST => {
            Reply::bad_request("Vault is already initialized")
        }
        "sys/health" | "sys/seal-status" | "sys/leader" | "sys/init" => Reply::status(StatusCode::METHOD_NOT_ALLOWED),
        _ => return None,
    };
    Some(reply)
}

/// An unsealed, initialized, active node; `activecode` may change the
/// status as in Vault (the other *code parameters describe states a dev
/// server is never in).
fn health(info: &ServerInfo, query: &Map<String, Value>, head: bool) -> Reply {
    let status = match query.get("activecode") {
        None => StatusCode::OK,
        Some(raw) => {
            let code = weak_i64(raw).and_then(|c| u16::try_from(c).ok()).and_then(|c| StatusCode::from_u16(c).ok());
            match code {
                Some(code) => code,
                None => return Reply::bad_request("bad code for 'activecode' parameter"),
            }
        }
    };
    if head {
        return Reply::Head(status);
    }
    let body = json!({
        "initialized": true,
        "sealed": false,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": OffsetDateTime::now_utc().unix_timestamp(),
        "version": info.version,
        "enterprise": false,
        "cluster_name": info.cluster_name,
        "cluster_id": info.cluster_id,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
    });
    Reply::Plain(status, body)
}

fn seal_status(info: &ServerInfo) -> Value {
    json!({
        "type": "shamir",
        "initialized": true,
        "sealed": false,
        "t": 1,
        "n": 1,
        "progress": 0,
        "nonce": "",
        "version": info.version,
        "build_date": BUILD_DATE,
        "commit_date": BUILD_DATE,
        "migration": false,
        "cluster_name": info.cluster_name,
        "cluster_id": info.cluster_id,
        "recovery_seal": false,
        "storage_type": "inmem",
    })
}

fn leader() -> Value {
    json!({
        "ha_enabled": false,
        "is_self": false,
        "active_time": "0001-01-01T00:00:00Z",
        "leader_address": "",
        "leader_cluster_address": "",
        "performance_standby": false,
        "performance_standby_last_remote_wal": 0,
    })
}

/// Answer an authenticated `sys/<rest>` request (leases and policies have
/// their own modules).
pub(crate) fn handle(shared: &Arc<Shared>, state: &mut State, rest: &str, req: &Request) -> Handled {
    if rest == "mounts" || rest == "mounts/" {
        return match req.op {
            Operation::Read | Operation::List => list_mounts(state, Table::Secrets),
            _ => Reply::unsupported_operation(),
        }
        .into();
    }
    if rest == "auth" || rest == "auth/" {
        return match req.op {
            Operation::Read | Operation::List => list_mounts(state, Table::Auth),
            _ => Reply::unsupported_operation(),
        }
        .into();
    }
    if let Some(sub) = rest.strip_prefix("auth/") {
        return auth::mount::handle(shared, state, sub, req);
    }
    if let Some(sub) = rest.strip_prefix("mounts/") {
        return match sub.strip_suffix("/tune") {
            Some(mount) => tune(state, &normalize_mount_path(mount), req).into(),
            None if req.op == Operation::Delete => unmount(shared, state, &normalize_mount_path(sub)),
            None => mount(state, &normalize_mount_path(sub), req).into(),
        };
    }
    if let Some(path) = rest.strip_prefix("internal/ui/mounts/") {
        return match req.op {
            Operation::Read => ui_mount(state, path),
            _ => Reply::unsupported_operation(),
        }
        .into();
    }
    Reply::unsupported_path().into()
}

/// `DELETE sys/mounts/:path`: the mount goes, and so do its leases.
fn unmount(shared: &Arc<Shared>, state: &mut State, path: &str) -> Handled {
    if let Err(reply) = state.mounts.disable(path) {
        return reply.into();
    }
    let pending = if path.is_empty() { Vec::new() } else { state.leases.begin_revoke_prefix(path) };
    revocations_then(shared, pending, Reply::NoContent)
}

/// `GET sys/mounts` or `GET sys/auth`: path to mount info.
fn list_mounts(state: &State, table: Table) -> Reply {
    // sys/auth names methods without their "auth/" prefix ("token/").
    let data: Map<String, Value> = state
        .mounts
        .list(table)
        .map(|e| (e.path.strip_prefix("auth/").unwrap_or(&e.path).to_owned(), e.info_json()))
        .collect();
    Reply::ok_injected(Value::Object(data))
}

/// `sys/mounts/:path`: read, enable, disable.
fn mount(state: &mut State, path: &str, req: &Request) -> Reply {
    match req.op {
        Operation::Read => match state.mounts.get(path).filter(|e| e.table == Table::Secrets) {
            Some(entry) => Reply::ok_injected(entry.info_json()),
            None => Reply::bad_request(format!("No secret engine mount at {path}")),
        },
        Operation::Write => match enable(state, path, &req.data) {
            Ok(()) => Reply::NoContent,
            Err(reply) => reply,
        },
        _ => Reply::unsupported_operation(),
    }
}

/// `POST sys/mounts/:path` with `{"type", "description", "config", "options", ...}`.
fn enable(state: &mut State, path: &str, body: &Map<String, Value>) -> Result<(), Reply> {
    if path.is_empty() {
        return Err(Reply::bad_request("backend path must be specified"));
    }
    let type_name = body.get("type").and_then(Value::as_str).filter(|t| !t.is_empty());
    let Some(type_name) = type_name else {
        return Err(Reply::bad_request("backend type must be specified"));
    };
    let options = parse_options(body.get("options"))?;
    let (type_name, options, engine) = engine_for(type_name, options)?;
    let description = body.get("description").and_then(Value::as_str).unwrap_or("");
    let mut entry = MountEntry::new(path, Table::Secrets, &type_name, description, engine);
    entry.options = options;
    let flag = |name: &str| body.get(name).and_then(weak_bool).unwrap_or(false);
    entry.local = flag("local");
    entry.seal_wrap = flag("seal_wrap");
    entry.external_entropy_access = flag("external_entropy_access");
    if let Some(Value::Object(config)) = body.get("config") {
        entry.config.update_from(config).map_err(Reply::bad_request)?;
    }
    state.mounts.enable(entry)?;
    tracing::info!(mount = path, kind = type_name.as_str(), "vault dev server: mount enabled");
    Ok(())
}

/// `options` as a map of strings (`{"version": 2}` is read as "2").
fn parse_options(raw: Option<&Value>) -> Result<Option<BTreeMap<String, String>>, Reply> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let value =
                    weak_string(v).ok_or_else(|| Reply::bad_request(format!("option {k:?} must be a string")))?;
                Ok((k.clone(), value))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(Reply::bad_request("options must be a map of strings")),
    }
}

/// `sys/mounts/:path/tune`: effective settings; description, TTLs and the
/// kv version (1 to 2 upgrades the data; 2 to 1 is refused, as in Vault).
pub(crate) fn tune(state: &mut State, path: &str, req: &Request) -> Reply {
    let Some(entry) = state.mounts.get_mut(path) else {
        return Reply::bad_request(format!("cannot fetch mount entry for {path:?}"));
    };
    match req.op {
        Operation::Read => Reply::ok_injected(entry.tune_json()),
        Operation::Write => match apply_tune(entry, &req.data, req.now) {
            Ok(()) => Reply::NoContent,
            Err(reply) => reply,
        },
        _ => Reply::unsupported_operation(),
    }
}

fn apply_tune(entry: &mut MountEntry, body: &Map<String, Value>, now: OffsetDateTime) -> Result<(), Reply> {
    let options = parse_options(body.get("options"))?;
    let version = options.as_ref().and_then(|o| o.get("version")).filter(|v| !v.is_empty()).cloned();
    if let Some(version) = &version {
        match (&entry.engine, version.as_str()) {
            (Engine::KvV1(_), "1") | (Engine::KvV2(_), "2") => {}
            (Engine::KvV1(_), "2") => {
                if let Engine::KvV1(v1) = std::mem::replace(&mut entry.engine, Engine::Unimplemented) {
                    entry.engine = Engine::KvV2(KvV2::from_v1(v1, now));
                }
            }
            (Engine::KvV2(_), "1") => {
                return Err(Reply::bad_request("cannot downgrade mount from version 2"));
            }
            (Engine::KvV1(_) | Engine::KvV2(_), other) => {
                return Err(Reply::bad_request(format!("invalid kv version {other:?}")));
            }
            _ => {
                return Err(Reply::bad_request(format!(
                    "secrets engine {:?} does not allow setting a version",
                    entry.type_name
                )));
            }
        }
    }
    let mut config = Map::new();
    for key in ["default_lease_ttl", "max_lease_ttl"].into_iter().chain(CONFIG_EXTRAS) {
        if let Some(value) = body.get(key) {
            config.insert(key.to_owned(), value.clone());
        }
    }
    entry.config.update_from(&config).map_err(Reply::bad_request)?;
    if let Some(description) = body.get("description").and_then(Value::as_str) {
        entry.description = description.to_owned();
    }
    if let Some(options) = options {
        entry.options.get_or_insert_with(BTreeMap::new).extend(options);
    }
    Ok(())
}

/// `GET sys/internal/ui/mounts/:path`: the mount serving `path`, with its
/// path and options (the `vault kv` commands read `options.version`).
fn ui_mount(state: &State, path: &str) -> Reply {
    let mut path = path.trim_start_matches('/').to_owned();
    if !path.ends_with('/') {
        path.push('/');
    }
    let entry = state.mounts.matching(&path).and_then(|m| state.mounts.get(m));
    let Some(entry) = entry else {
        // Vault hides which mounts exist behind a 403 here.
        return Reply::Errors(
            StatusCode::FORBIDDEN,
            vec![format!(
                "preflight capability check returned 403, please ensure client's policies grant access to path {path:?}"
            )],
        );
    };
    let mut data = entry.info_json();
    data["path"] = json!(entry.path);
    Reply::ok(data)
}
