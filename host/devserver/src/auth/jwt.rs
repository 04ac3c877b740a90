//! The JWT auth method (`jwt`, also mounted as `oidc`), validated locally.
//!
//! The mount's `config` holds `jwt_validation_pubkeys` (PEM) and an
//! optional `bound_issuer`; discovery URLs and JWKS URLs need network
//! access the dev server does not have and are refused with a clear error.
//! A role (`role_type: "jwt"`) binds audiences, subject and claims and
//! names the `user_claim`. Login checks, in Vault's order: the signature
//! against the configured keys ([`super::jws`]), the time claims with the
//! role's leeways, issuer, audience, subject, user claim, bound claims.
//! Errors use Vault's words ("error validating token: ...",
//! "error validating claims: claim \"x\" does not match any associated
//! bound claim values"); the answer's shape follows jwt.json.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::super::Request;
use super::super::response::Reply;
use super::super::token::string_list;
use super::super::util::{parse_duration, weak_i64, weak_string};
use super::jws::{self, PublicKey};
use super::{AuthOutcome, ConfigAndRoles, LoginGrant, MethodConfig, MethodRole, TokenParams, glob_match, str_field};

/// Vault's default leeways, in seconds.
const DEFAULT_CLOCK_SKEW: i64 = 60;
const DEFAULT_EXPIRATION_LEEWAY: i64 = 150;
const DEFAULT_NOT_BEFORE_LEEWAY: i64 = 150;

/// One JWT mount: config and roles.
pub(crate) type JwtAuth = ConfigAndRoles<Config>;

/// The mount's `config`: the keys that sign its tokens, and their issuer.
pub(crate) struct Config {
    pubkeys: Vec<String>,
    keys: Vec<PublicKey>,
    bound_issuer: String,
    supported_algs: Vec<String>,
    default_role: String,
}

/// A role: the claims it binds and the token it grants.
#[derive(Clone)]
pub(crate) struct Role {
    role_type: String,
    bound_audiences: Vec<String>,
    user_claim: String,
    bound_subject: String,
    bound_claims: Map<String, Value>,
    bound_claims_type: String,
    claim_mappings: BTreeMap<String, String>,
    leeways: Leeways,
    token: TokenParams,
}

/// Seconds of slack for time claims; -1 disables one, 0 means the default.
#[derive(Clone, Copy, Default)]
pub(crate) struct Leeways {
    pub clock_skew: i64,
    pub expiration: i64,
    pub not_before: i64,
}

impl Leeways {
    fn effective(value: i64, default: i64) -> i64 {
        match value {
            0 => default,
            v if v < 0 => 0,
            v => v,
        }
    }
}

/// The checks every JWT-based login starts with: decode `token`, verify its
/// signature with `keys` (allowing only `algs`; empty: every supported
/// one), then its `exp`/`nbf`/`iat` claims. Answers the verified claims.
pub(crate) fn verified_claims(
    token: &str,
    keys: &[PublicKey],
    algs: &[String],
    leeways: Leeways,
    now: OffsetDateTime,
) -> Result<Map<String, Value>, String> {
    let jwt = jws::decode(token)?;
    jwt.verify(keys, algs)?;
    check_times(&jwt.claims, leeways, now)?;
    Ok(jwt.claims)
}

/// The `exp`/`nbf`/`iat` checks every JWT login makes.
fn check_times(claims: &Map<String, Value>, leeways: Leeways, now: OffsetDateTime) -> Result<(), String> {
    let now = now.unix_timestamp();
    let skew = Leeways::effective(leeways.clock_skew, DEFAULT_CLOCK_SKEW);
    let claim = |name: &str| claims.get(name).and_then(weak_i64);
    if let Some(exp) = claim("exp") {
        let leeway = Leeways::effective(leeways.expiration, DEFAULT_EXPIRATION_LEEWAY);
        if now > exp + leeway + skew {
            return Err("invalid expiration time (exp) claim: token is expired".into());
        }
    }
    if let Some(nbf) = claim("nbf") {
        let leeway = Leeways::effective(leeways.not_before, DEFAULT_NOT_BEFORE_LEEWAY);
        if now < nbf - leeway - skew {
            return Err("invalid not before (nbf) claim: token not yet valid".into());
        }
    }
    if let Some(iat) = claim("iat")
        && now < iat - skew
    {
        return Err("invalid issued at (iat) claim: token issued in the future".into());
    }
    Ok(())
}

/// The token's `aud` claim as a list (a string or an array).
pub(crate) fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

impl MethodConfig for Config {
    type Role = Role;

    fn from_body(body: &Map<String, Value>) -> Result<Self, String> {
        for remote in ["oidc_discovery_url", "jwks_url"] {
            if !str_field(body, remote).is_empty() {
                return Err(format!(
                    "{remote} needs network access the rotator dev server does not have: set jwt_validation_pubkeys"
                ));
            }
        }
        let pubkeys = string_list(body.get("jwt_validation_pubkeys"))?;
        if pubkeys.is_empty() {
            return Err(
                "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set".into()
            );
        }
        let keys = jws::parse_pem_list(&pubkeys)?;
        let supported_algs = string_list(body.get("jwt_supported_algs"))?;
        if let Some(bad) = supported_algs.iter().find(|a| !jws::SUPPORTED_ALGS.contains(&a.as_str())) {
            return Err(format!("invalid jwt_supported_algs: unsupported signing algorithm {bad:?}"));
        }
        Ok(Config {
            pubkeys,
            keys,
            bound_issuer: str_field(body, "bound_issuer").to_owned(),
            supported_algs,
            default_role: str_field(body, "default_role").to_owned(),
        })
    }

    fn to_json(&self) -> Reply {
        Reply::ok(json!({
            "bound_issuer": self.bound_issuer,
            "default_role": self.default_role,
            "jwt_supported_algs": self.supported_algs,
            "jwt_validation_pubkeys": self.pubkeys,
            "jwks_url": "",
            "jwks_ca_pem": "",
            "oidc_discovery_url": "",
            "oidc_discovery_ca_pem": "",
            "oidc_client_id": "",
            "provider_config": {},
            "namespace_in_state": true,
        }))
    }

    /// `POST login` {role, jwt}.
    fn login(config: Option<&Self>, roles: &BTreeMap<String, Role>, req: &Request) -> AuthOutcome {
        let Some(config) = config else {
            return Reply::bad_request("could not load configuration").into();
        };
        let role_name = match str_field(&req.data, "role") {
            "" => config.default_role.as_str(),
            name => name,
        };
        if role_name.is_empty() {
            return Reply::bad_request("missing role").into();
        }
        let Some(role) = roles.get(role_name) else {
            return Reply::bad_request(format!("role {role_name:?} could not be found")).into();
        };
        if role.role_type != "jwt" {
            return Reply::bad_request("role with oidc role_type is not allowed").into();
        }
        let token = str_field(&req.data, "jwt");
        if token.is_empty() {
            return Reply::bad_request("missing token").into();
        }
        match validate(config, role, token, req.now) {
            Ok((user, metadata)) => {
                let mut metadata = metadata;
                metadata.insert("role".into(), role_name.to_owned());
                AuthOutcome::Login(LoginGrant { params: role.token.clone(), metadata, display_name: user })
            }
            Err(e) => Reply::bad_request(e).into(),
        }
    }
}

/// Vault's checks, in Vault's order; answers the user claim's value and the
/// mapped claims.
fn validate(
    config: &Config,
    role: &Role,
    token: &str,
    now: OffsetDateTime,
) -> Result<(String, BTreeMap<String, String>), String> {
    let claims = &verified_claims(token, &config.keys, &config.supported_algs, role.leeways, now)
        .map_err(|e| format!("error validating token: {e}"))?;
    if !config.bound_issuer.is_empty() && claims.get("iss").and_then(Value::as_str) != Some(&config.bound_issuer) {
        return Err("error validating token: invalid issuer (iss) claim".into());
    }
    let token_audiences = audiences(claims);
    if role.bound_audiences.is_empty() {
        if !token_audiences.is_empty() {
            return Err("error validating token: audience claim found in JWT but no audiences bound to the role".into());
        }
    } else if !token_audiences.iter().any(|a| role.bound_audiences.contains(a)) {
        return Err(
            "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience"
                .into(),
        );
    }
    if !role.bound_subject.is_empty() && claims.get("sub").and_then(Value::as_str) != Some(&role.bound_subject) {
        return Err("error validating token: sub claim does not match bound subject".into());
    }
    let user = claims
        .get(&role.user_claim)
        .and_then(weak_string)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("claim {:?} not found in token", role.user_claim))?;
    for (name, allowed) in &role.bound_claims {
        let Some(actual) = claims.get(name) else {
            return Err(format!("error validating claims: claim {name:?} is missing"));
        };
        let allowed: Vec<String> = match allowed {
            Value::Array(items) => items.iter().filter_map(weak_string).collect(),
            other => weak_string(other).into_iter().collect(),
        };
        let actual: Vec<String> = match actual {
            Value::Array(items) => items.iter().filter_map(weak_string).collect(),
            other => weak_string(other).into_iter().collect(),
        };
        let glob = role.bound_claims_type == "glob";
        let ok = actual.iter().any(|a| allowed.iter().any(|p| if glob { glob_match(p, a) } else { p == a }));
        if !ok {
            return Err(format!(
                "error validating claims: claim {name:?} does not match any associated bound claim values"
            ));
        }
    }
    let metadata = role
        .claim_mappings
        .iter()
        .filter_map(|(claim, key)| claims.get(claim).and_then(weak_string).map(|v| (key.clone(), v)))
        .collect();
    Ok((user, metadata))
}

impl Default for Role {
    fn default() -> Self {
        Role {
            role_type: "oidc".into(),
            bound_audiences: Vec::new(),
            user_claim: String::new(),
            bound_subject: String::new(),
            bound_claims: Map::new(),
            bound_claims_type: "string".into(),
            claim_mappings: BTreeMap::new(),
            leeways: Leeways::default(),
            token: TokenParams::default(),
        }
    }
}

impl MethodRole for Role {
    fn update_from(&mut self, body: &Map<String, Value>) -> Result<(), String> {
        if let Some(v) = body.get("role_type").and_then(Value::as_str) {
            match v {
                "jwt" | "oidc" => self.role_type = v.to_owned(),
                other => return Err(format!("invalid 'role_type': {other}")),
            }
        }
        if let Some(v) = body.get("bound_audiences") {
            self.bound_audiences = string_list(Some(v))?;
        }
        if let Some(v) = body.get("user_claim").and_then(Value::as_str) {
            self.user_claim = v.to_owned();
        }
        if let Some(v) = body.get("bound_subject").and_then(Value::as_str) {
            self.bound_subject = v.to_owned();
        }
        match body.get("bound_claims") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => self.bound_claims = map.clone(),
            Some(_) => return Err("bound_claims must be a map".into()),
        }
        if let Some(v) = body.get("bound_claims_type").and_then(Value::as_str) {
            match v {
                "string" | "glob" => self.bound_claims_type = v.to_owned(),
                other => return Err(format!("invalid 'bound_claims_type': {other}")),
            }
        }
        match body.get("claim_mappings") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                self.claim_mappings = map.iter().filter_map(|(k, v)| weak_string(v).map(|v| (k.clone(), v))).collect()
            }
            Some(_) => return Err("claim_mappings must be a map".into()),
        }
        let leeway = |name: &str| -> Result<Option<i64>, String> {
            match body.get(name) {
                None => Ok(None),
                Some(v) if weak_i64(v) == Some(-1) => Ok(Some(-1)),
                Some(v) => parse_duration(v).map(|d| Some(d.as_secs() as i64)),
            }
        };
        if let Some(v) = leeway("clock_skew_leeway")? {
            self.leeways.clock_skew = v;
        }
        if let Some(v) = leeway("expiration_leeway")? {
            self.leeways.expiration = v;
        }
        if let Some(v) = leeway("not_before_leeway")? {
            self.leeways.not_before = v;
        }
        self.token.update_from(body)?;
        if self.user_claim.is_empty() {
            return Err("a user claim must be defined on the role".into());
        }
        if self.role_type == "jwt"
            && self.bound_audiences.is_empty()
            && self.bound_subject.is_empty()
            && self.bound_claims.is_empty()
            && self.token.bound_cidrs.is_empty()
        {
            return Err("must have at least one bound constraint when creating/updating a role".into());
        }
        Ok(())
    }

    fn to_json(&self) -> Reply {
        let mut out = Map::new();
        for (key, value) in [
            ("role_type", json!(self.role_type)),
            ("bound_audiences", json!(self.bound_audiences)),
            ("user_claim", json!(self.user_claim)),
            ("bound_subject", json!(self.bound_subject)),
            ("bound_claims", json!(self.bound_claims)),
            ("bound_claims_type", json!(self.bound_claims_type)),
            ("claim_mappings", json!(self.claim_mappings)),
            ("clock_skew_leeway", json!(self.leeways.clock_skew)),
            ("expiration_leeway", json!(self.leeways.expiration)),
            ("not_before_leeway", json!(self.leeways.not_before)),
        ] {
            out.insert(key.into(), value);
        }
        self.token.to_json(&mut out);
        Reply::ok(Value::Object(out))
    }
}
