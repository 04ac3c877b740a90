//! ACL policies: the store, the `sys/policy*` and `sys/capabilities*`
//! endpoints, and the check every authenticated request passes.
//!
//! Policies are stored as the HCL text clients sent (reads give it back
//! unchanged) plus the rules [`hcl`] parsed from it; [`acl`] decides what
//! a set of policies grants on a path. `root` grants everything and cannot
//! be changed; `default` exists from the start with Vault's default text
//! (lookup-self, renew-self, revoke-self, capabilities-self, cubbyhole, ...)
//! and cannot be deleted. Like Vault, some paths are root-protected and also
//! need `sudo` ([`needs_sudo`]).

mod acl;
mod hcl;

pub(crate) use acl::{Capabilities, Capability};

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::response::Reply;
use super::token::string_list;
use super::{Operation, Request, State};

/// Vault's `default` policy, as a fresh Vault writes it.
const DEFAULT_POLICY: &str = r#"# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap and unwrap values
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
"#;

/// Root-protected paths: besides the capability for the operation they need
/// `sudo` (Vault's `PathsSpecial.Root` of the system and token backends).
const SUDO_PATHS: [&str; 11] = [
    "sys/auth/*",
    "sys/leases/lookup/*",
    "sys/leases/revoke-prefix/*",
    "sys/leases/revoke-force/*",
    "sys/revoke-prefix/*",
    "sys/revoke-force/*",
    "sys/audit",
    "sys/audit/*",
    "sys/raw/*",
    "auth/token/revoke-orphan",
    "auth/token/accessors/",
];

/// Whether `path` is root-protected.
pub(crate) fn needs_sudo(path: &str) -> bool {
    SUDO_PATHS.iter().any(|pattern| acl::matches(pattern, path))
}

/// One stored policy.
struct Policy {
    text: String,
    rules: Vec<acl::Rule>,
}

/// Every ACL policy but `root`, by name.
pub(crate) struct PolicyStore {
    policies: BTreeMap<String, Policy>,
}

impl PolicyStore {
    /// A store with Vault's `default` policy.
    pub fn with_defaults() -> Self {
        let rules = hcl::parse_policy(DEFAULT_POLICY).unwrap_or_default();
        let default = Policy { text: DEFAULT_POLICY.to_owned(), rules };
        Self { policies: BTreeMap::from([("default".to_owned(), default)]) }
    }

    /// Whether a policy of that name exists (`root` always does).
    pub fn exists(&self, name: &str) -> bool {
        name == "root" || self.policies.contains_key(name)
    }

    /// What `policies` grant on `path`.
    pub fn capabilities(&self, policies: &[String], path: &str) -> Capabilities {
        if policies.iter().any(|p| p == "root") {
            return Capabilities::ROOT;
        }
        let rules = policies.iter().filter_map(|name| self.policies.get(name)).flat_map(|p| p.rules.iter());
        acl::evaluate(rules, path)
    }

    /// Store (or replace) a policy from its HCL or JSON text.
    pub fn put(&mut self, name: &str, text: &str) -> Result<(), String> {
        let rules = hcl::parse_policy(text).map_err(|e| format!("failed to parse policy: {e}"))?;
        self.policies.insert(name.to_owned(), Policy { text: text.to_owned(), rules });
        Ok(())
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.policies.keys().cloned().collect();
        names.push("root".into());
        names.sort();
        names
    }
}

/// The capability a request needs: its operation, with a write meaning
/// `create` when the engine says the target does not exist yet and `update`
/// otherwise (Vault's existence check).
pub(crate) fn required(op: Operation, exists: Option<bool>) -> Capability {
    match op {
        Operation::Read | Operation::Head => Capability::Read,
        Operation::List => Capability::List,
        Operation::Delete => Capability::Delete,
        Operation::Patch => Capability::Patch,
        Operation::Write if exists == Some(false) => Capability::Create,
        Operation::Write => Capability::Update,
    }
}

/// Answer `sys/policy`, `sys/policies/acl` and `sys/capabilities*`;
/// `None` when `rest` (the path after `sys/`) is none of them.
pub(crate) fn handle(state: &mut State, rest: &str, req: &Request) -> Option<Reply> {
    let reply = match rest {
        "policy" | "policy/" => match req.op {
            Operation::Read | Operation::List => {
                let names = state.policies.names();
                Reply::ok_injected(json!({ "keys": names, "policies": names }))
            }
            _ => Reply::unsupported_operation(),
        },
        "policies/acl/" if req.op == Operation::List => Reply::list(state.policies.names()),
        "capabilities-self" | "capabilities" | "capabilities-accessor" => capabilities(state, rest, req),
        _ => {
            if let Some(name) = rest.strip_prefix("policy/") {
                one_policy(state, name, req, "rules")
            } else if let Some(name) = rest.strip_prefix("policies/acl/") {
                one_policy(state, name, req, "policy")
            } else {
                return None;
            }
        }
    };
    Some(reply)
}

/// `sys/policy/:name` (text under `rules`) and `sys/policies/acl/:name`
/// (text under `policy`).
fn one_policy(state: &mut State, name: &str, req: &Request, text_key: &str) -> Reply {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return Reply::bad_request("policy name must be provided");
    }
    let legacy = text_key == "rules";
    match req.op {
        Operation::Read => match state.policies.policies.get(&name) {
            Some(policy) => {
                let data = json!({ "name": name, text_key: policy.text });
                if legacy { Reply::ok_injected(data) } else { Reply::ok(data) }
            }
            None => Reply::not_found(),
        },
        Operation::Write => {
            if name == "root" {
                return Reply::bad_request("cannot update root policy");
            }
            let text = ["policy", "rules"].iter().find_map(|k| req.data.get(*k).and_then(Value::as_str));
            let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
                return Reply::bad_request("'policy' parameter not supplied or empty");
            };
            match state.policies.put(&name, text) {
                Ok(()) => Reply::NoContent,
                Err(e) => Reply::bad_request(e),
            }
        }
        Operation::Delete => match name.as_str() {
            "root" => Reply::bad_request("cannot delete root policy"),
            "default" => Reply::bad_request("cannot delete default policy"),
            _ => {
                state.policies.policies.remove(&name);
                Reply::NoContent
            }
        },
        _ => Reply::unsupported_operation(),
    }
}

/// `sys/capabilities-self` {paths}, `sys/capabilities` {token, paths} and
/// `sys/capabilities-accessor` {accessor, paths}.
fn capabilities(state: &State, rest: &str, req: &Request) -> Reply {
    if req.op != Operation::Write {
        return Reply::unsupported_operation();
    }
    let field = |name: &str| req.data.get(name).and_then(Value::as_str).unwrap_or("");
    let policies = match rest {
        "capabilities" => state.tokens.get(field("token"), req.now).map(|t| t.settings.policies.clone()),
        "capabilities-accessor" => {
            state.tokens.by_accessor(field("accessor"), req.now).map(|t| t.settings.policies.clone())
        }
        _ => Some(req.policies.clone()),
    };
    let Some(policies) = policies else {
        return Reply::bad_request("invalid token");
    };
    let paths = match string_list(req.data.get("paths")) {
        Ok(paths) if !paths.is_empty() => paths,
        Ok(_) => match string_list(req.data.get("path")) {
            Ok(paths) if !paths.is_empty() => paths,
            _ => return Reply::bad_request("missing paths"),
        },
        Err(e) => return Reply::bad_request(e),
    };
    let mut data = Map::new();
    for path in &paths {
        let names = state.policies.capabilities(&policies, path.trim_start_matches('/')).names();
        data.insert(path.clone(), json!(names));
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), data[&paths[0]].clone());
    }
    Reply::ok_injected(Value::Object(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_default_policy_grants_self_service_only() {
        let store = PolicyStore::with_defaults();
        let default = ["default".to_owned()];
        let caps = |path| store.capabilities(&default, path);
        assert!(caps("auth/token/lookup-self").allows(Capability::Read));
        assert!(caps("auth/token/renew-self").allows(Capability::Update));
        assert!(caps("cubbyhole/mine").allows(Capability::Create));
        assert!(!caps("secret/data/x").allows(Capability::Read));
        assert!(!caps("auth/token/create").allows(Capability::Update));
        assert!(needs_sudo("sys/leases/revoke-prefix/database/"));
        assert!(!needs_sudo("sys/leases/revoke"));
        assert_eq!(required(Operation::Write, Some(false)), Capability::Create);
        assert_eq!(required(Operation::Write, None), Capability::Update);
    }
}
