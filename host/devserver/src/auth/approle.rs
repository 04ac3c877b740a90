//! The AppRole auth method: roles, role IDs, secret IDs and login.
//!
//! A role holds token settings ([`TokenParams`]) and secret-ID rules
//! (`bind_secret_id`, `secret_id_ttl`, `secret_id_num_uses`). Its role ID
//! is a random UUID unless set; secret IDs are generated (or set with
//! `custom-secret-id`), expire, and are used up after `num_uses` logins.
//! Login with a known role ID and a live secret ID earns a token with the
//! role's policies and metadata `{"role_name": ...}` plus the secret ID's
//! own metadata. Shapes follow `shared/contracts/vault/approle.json`;
//! failures use Vault's wording ("invalid role or secret ID").

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::super::response::Reply;
use super::super::token::string_list;
use super::super::util::{parse_duration, rfc3339, weak_bool, weak_i64};
use super::super::{Operation, Request};
use super::{AuthOutcome, LoginGrant, TokenParams, str_field, valid_name};

/// The roles of one AppRole mount.
#[derive(Default)]
pub(crate) struct AppRole {
    roles: BTreeMap<String, Role>,
}

struct Role {
    settings: Settings,
    /// By secret ID.
    secret_ids: BTreeMap<String, SecretId>,
}

/// What a role write sets.
#[derive(Clone)]
struct Settings {
    role_id: String,
    bind_secret_id: bool,
    secret_id_ttl: u64,
    secret_id_num_uses: u64,
    secret_id_bound_cidrs: Vec<String>,
    local_secret_ids: bool,
    token: TokenParams,
}

impl Settings {
    fn new() -> Self {
        Settings {
            role_id: uuid(),
            bind_secret_id: true,
            secret_id_ttl: 0,
            secret_id_num_uses: 0,
            secret_id_bound_cidrs: Vec::new(),
            local_secret_ids: false,
            token: TokenParams::default(),
        }
    }

    /// Apply the fields a role write gives.
    fn update_from(&mut self, body: &Map<String, Value>) -> Result<(), String> {
        if let Some(v) = body.get("bind_secret_id") {
            self.bind_secret_id = weak_bool(v).ok_or("bind_secret_id must be a boolean")?;
        }
        if let Some(v) = body.get("secret_id_ttl") {
            self.secret_id_ttl = parse_duration(v)?.as_secs();
        }
        if let Some(v) = body.get("secret_id_num_uses") {
            self.secret_id_num_uses =
                weak_i64(v).and_then(|n| u64::try_from(n).ok()).ok_or("secret_id_num_uses cannot be negative")?;
        }
        if let Some(v) = body.get("secret_id_bound_cidrs") {
            self.secret_id_bound_cidrs = string_list(Some(v))?;
        }
        if let Some(v) = body.get("local_secret_ids") {
            self.local_secret_ids = weak_bool(v).unwrap_or(false);
        }
        let custom_id = str_field(body, "role_id");
        if !custom_id.is_empty() {
            self.role_id = custom_id.to_owned();
        }
        self.token.update_from(body)?;
        if !self.bind_secret_id && self.secret_id_bound_cidrs.is_empty() && self.token.bound_cidrs.is_empty() {
            return Err("at least one constraint should be enabled on the role".into());
        }
        Ok(())
    }
}

struct SecretId {
    accessor: String,
    created: OffsetDateTime,
    expires: Option<OffsetDateTime>,
    ttl: u64,
    /// Uses left; 0 means unlimited.
    num_uses: u64,
    metadata: BTreeMap<String, String>,
    cidr_list: Vec<String>,
}

impl SecretId {
    fn live(&self, now: OffsetDateTime) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    fn lookup_json(&self) -> Value {
        json!({
            "cidr_list": self.cidr_list,
            "creation_time": rfc3339(self.created),
            "expiration_time": self.expires.map_or("0001-01-01T00:00:00Z".to_owned(), rfc3339),
            "last_updated_time": rfc3339(self.created),
            "metadata": self.metadata,
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl,
            "token_bound_cidrs": [],
        })
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl AppRole {
    /// Answer `auth/<mount>/<rest>`.
    pub fn handle(&mut self, rest: &str, req: &Request) -> AuthOutcome {
        if rest == "login" {
            return self.login(req);
        }
        if rest == "role/" && req.op == Operation::List {
            return Reply::list(self.roles.keys().cloned().collect()).into();
        }
        let Some(role_path) = rest.strip_prefix("role/") else {
            return Reply::unsupported_path().into();
        };
        let (name, sub) = role_path.split_once('/').unwrap_or((role_path, ""));
        if !valid_name(name) {
            return Reply::bad_request(format!("invalid role name {name:?}")).into();
        }
        let reply = match (sub, req.op) {
            ("", Operation::Read) => self.roles.get(name).map_or_else(Reply::not_found, |r| Reply::ok(r.to_json())),
            ("", Operation::Write) => self.write_role(name, &req.data),
            ("", Operation::Delete) => {
                self.roles.remove(name);
                Reply::NoContent
            }
            ("role-id", Operation::Read) => match self.roles.get(name) {
                Some(role) => Reply::ok(json!({ "role_id": role.settings.role_id })),
                None => Reply::bad_request(format!("role {name:?} does not exist")),
            },
            ("role-id", Operation::Write) => self.set_role_id(name, str_field(&req.data, "role_id")),
            ("secret-id", Operation::Write) => self.new_secret_id(name, uuid(), &req.data, req.now),
            ("custom-secret-id", Operation::Write) => match str_field(&req.data, "secret_id") {
                "" => Reply::bad_request("missing secret_id"),
                id => self.new_secret_id(name, id.to_owned(), &req.data, req.now),
            },
            ("secret-id/", Operation::List) => match self.roles.get(name) {
                Some(role) => Reply::list(role.secret_ids.values().map(|s| s.accessor.clone()).collect()),
                None => Reply::bad_request(format!("role {name:?} does not exist")),
            },
            ("secret-id/lookup", Operation::Write) => {
                self.lookup_secret_id(name, |id, _| id == str_field(&req.data, "secret_id"))
            }
            ("secret-id-accessor/lookup", Operation::Write) => {
                self.lookup_secret_id(name, |_, s| s.accessor == str_field(&req.data, "secret_id_accessor"))
            }
            ("secret-id/destroy", Operation::Write | Operation::Delete) => {
                self.destroy_secret_id(name, |id, _| id == str_field(&req.data, "secret_id"))
            }
            ("secret-id-accessor/destroy", Operation::Write | Operation::Delete) => {
                self.destroy_secret_id(name, |_, s| s.accessor == str_field(&req.data, "secret_id_accessor"))
            }
            ("" | "role-id" | "secret-id" | "custom-secret-id" | "secret-id/", _) => Reply::unsupported_operation(),
            _ => Reply::unsupported_path(),
        };
        reply.into()
    }

    /// `POST role/:name`: create, or update only the fields given.
    fn write_role(&mut self, name: &str, body: &Map<String, Value>) -> Reply {
        let mut settings = self.roles.get(name).map_or_else(Settings::new, |r| r.settings.clone());
        if let Err(e) = settings.update_from(body) {
            return Reply::bad_request(e);
        }
        if self.roles.iter().any(|(n, r)| n != name && r.settings.role_id == settings.role_id) {
            return Reply::bad_request("role_id already in use");
        }
        match self.roles.get_mut(name) {
            Some(role) => role.settings = settings,
            None => {
                self.roles.insert(name.to_owned(), Role { settings, secret_ids: BTreeMap::new() });
            }
        }
        Reply::NoContent
    }

    fn set_role_id(&mut self, name: &str, role_id: &str) -> Reply {
        if role_id.is_empty() {
            return Reply::bad_request("missing role_id");
        }
        if self.roles.iter().any(|(n, r)| n != name && r.settings.role_id == role_id) {
            return Reply::bad_request("role_id already in use");
        }
        match self.roles.get_mut(name) {
            Some(role) => {
                role.settings.role_id = role_id.to_owned();
                Reply::NoContent
            }
            None => Reply::bad_request(format!("role {name:?} does not exist")),
        }
    }

    /// `POST role/:name/secret-id` (and `custom-secret-id`).
    fn new_secret_id(&mut self, name: &str, id: String, body: &Map<String, Value>, now: OffsetDateTime) -> Reply {
        let Some(role) = self.roles.get_mut(name) else {
            return Reply::bad_request(format!("role {name:?} does not exist"));
        };
        let limits = &role.settings;
        let ttl = match body.get("ttl").map(parse_duration).transpose() {
            Ok(Some(d)) if d.as_secs() > 0 => d.as_secs(),
            Ok(_) => limits.secret_id_ttl,
            Err(e) => return Reply::bad_request(e),
        };
        if limits.secret_id_ttl > 0 && ttl > limits.secret_id_ttl {
            return Reply::bad_request("ttl cannot be longer than the role's secret_id_ttl");
        }
        let num_uses = match body.get("num_uses").map(weak_i64) {
            None => limits.secret_id_num_uses,
            Some(Some(n)) if n >= 0 => n as u64,
            Some(_) => return Reply::bad_request("num_uses cannot be negative"),
        };
        if limits.secret_id_num_uses > 0 && (num_uses == 0 || num_uses > limits.secret_id_num_uses) {
            return Reply::bad_request("num_uses cannot be higher than the role's secret_id_num_uses");
        }
        let metadata = match body.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::String(s)) if s.trim().is_empty() => BTreeMap::new(),
            Some(Value::String(s)) => match serde_json::from_str::<BTreeMap<String, String>>(s) {
                Ok(map) => map,
                Err(e) => return Reply::bad_request(format!("failed to parse metadata: {e}")),
            },
            Some(_) => return Reply::bad_request("metadata must be a JSON-encoded string"),
        };
        let cidr_list = match string_list(body.get("cidr_list")) {
            Ok(list) => list,
            Err(e) => return Reply::bad_request(e),
        };
        if role.secret_ids.contains_key(&id) {
            return Reply::bad_request("SecretID is already registered");
        }
        let accessor = uuid();
        let expires = (ttl > 0).then(|| now + time::Duration::seconds(ttl as i64));
        let secret = SecretId { accessor: accessor.clone(), created: now, expires, ttl, num_uses, metadata, cidr_list };
        role.secret_ids.insert(id.clone(), secret);
        Reply::ok(json!({
            "secret_id_accessor": accessor,
            "secret_id": id,
            "secret_id_ttl": ttl,
            "secret_id_num_uses": num_uses,
        }))
    }

    fn lookup_secret_id(&self, name: &str, pick: impl Fn(&str, &SecretId) -> bool) -> Reply {
        let Some(role) = self.roles.get(name) else {
            return Reply::bad_request(format!("role {name:?} does not exist"));
        };
        match role.secret_ids.iter().find(|(id, s)| pick(id, s)) {
            Some((_, secret)) => Reply::ok(secret.lookup_json()),
            None => Reply::NoContent,
        }
    }

    fn destroy_secret_id(&mut self, name: &str, pick: impl Fn(&str, &SecretId) -> bool) -> Reply {
        let Some(role) = self.roles.get_mut(name) else {
            return Reply::bad_request(format!("role {name:?} does not exist"));
        };
        role.secret_ids.retain(|id, s| !pick(id, s));
        Reply::NoContent
    }

    /// `POST login` {role_id, secret_id}.
    fn login(&mut self, req: &Request) -> AuthOutcome {
        let invalid = || Reply::bad_request("invalid role or secret ID").into();
        let role_id = str_field(&req.data, "role_id");
        if role_id.is_empty() {
            return Reply::bad_request("missing role_id").into();
        }
        let Some((name, role)) = self.roles.iter_mut().find(|(_, r)| r.settings.role_id == role_id) else {
            return invalid();
        };
        let mut metadata = BTreeMap::new();
        if role.settings.bind_secret_id {
            let secret_id = str_field(&req.data, "secret_id");
            if secret_id.is_empty() {
                return Reply::bad_request("missing secret_id").into();
            }
            role.secret_ids.retain(|_, s| s.live(req.now));
            let Some(secret) = role.secret_ids.get_mut(secret_id) else {
                return invalid();
            };
            metadata.extend(secret.metadata.clone());
            match secret.num_uses {
                0 => {}
                1 => {
                    role.secret_ids.remove(secret_id);
                }
                n => secret.num_uses = n - 1,
            }
        }
        metadata.insert("role_name".into(), name.clone());
        AuthOutcome::Login(LoginGrant { params: role.settings.token.clone(), metadata, display_name: String::new() })
    }
}

impl Role {
    fn to_json(&self) -> Value {
        let s = &self.settings;
        let mut out = Map::new();
        out.insert("bind_secret_id".into(), json!(s.bind_secret_id));
        out.insert("local_secret_ids".into(), json!(s.local_secret_ids));
        out.insert("secret_id_bound_cidrs".into(), json!(s.secret_id_bound_cidrs));
        out.insert("secret_id_num_uses".into(), json!(s.secret_id_num_uses));
        out.insert("secret_id_ttl".into(), json!(s.secret_id_ttl));
        s.token.to_json(&mut out);
        out.insert("period".into(), json!(s.token.period));
        Value::Object(out)
    }
}
