//! Who rotator is in Vault: the auth methods and logging in.
//!
//! A token given by the operator (`VAULT_TOKEN`, a token file) cannot be
//! replaced by logging in, so it can only be renewed; a token file, though,
//! is read again once the token can no longer be extended, so an operator
//! (or an agent writing the file) can hand over a new token without a
//! restart ([`AuthMethod::reload_token`]). AppRole, Kubernetes
//! and JWT can log in again whenever the token stops renewing; their
//! credentials (secret id, service-account JWT) are read afresh at each
//! login, because the files behind them rotate too.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{RequestRetry, VaultClient, VaultError};
use crate::secret::SecretRef;

/// The default path of a pod's service-account token.
pub const KUBERNETES_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How rotator authenticates.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// A token supplied from outside; renewable at best.
    Token,
    /// A token read from this file (relative to the config's folder):
    /// renewable at best, and the file is read again when it stops renewing.
    TokenFile(PathBuf),
    AppRole {
        mount: String,
        role_id: SecretRef,
        secret_id: SecretRef,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt_path: PathBuf,
    },
    Jwt {
        mount: String,
        role: String,
        jwt: SecretRef,
    },
    /// `auth/<mount>/login/<username>` with the password.
    UserPass {
        mount: String,
        username: String,
        password: SecretRef,
    },
}

/// What Vault says about a token: from a login's `auth` block or from
/// `lookup-self`.
#[derive(Clone)]
pub struct TokenLease {
    /// Time to live; zero means it never expires (root tokens).
    pub ttl: Duration,
    pub renewable: bool,
    pub policies: Vec<String>,
    pub accessor: String,
}

impl std::fmt::Debug for TokenLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLease").field("ttl", &self.ttl).field("renewable", &self.renewable).finish_non_exhaustive()
    }
}

impl AuthMethod {
    /// Can this method get a new token when the current one runs out?
    pub fn can_login(&self) -> bool {
        !matches!(self, Self::Token | Self::TokenFile(_))
    }

    /// Can a new token be picked up from outside ([`reload_token`](Self::reload_token))?
    pub fn can_reload(&self) -> bool {
        matches!(self, Self::TokenFile(_))
    }

    /// Name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Token | Self::TokenFile(_) => "token",
            Self::AppRole { .. } => "approle",
            Self::Kubernetes { .. } => "kubernetes",
            Self::Jwt { .. } => "jwt",
            Self::UserPass { .. } => "userpass",
        }
    }

    /// Log in and give `client` the new token. `Ok(None)` for the token
    /// method, which cannot log in.
    pub async fn login(&self, client: &VaultClient, base: &std::path::Path) -> Result<Option<TokenLease>, VaultError> {
        let secret = |r: &SecretRef| r.resolve(base).map_err(|e| VaultError::Config(e.to_string()));
        let mut login = "login".to_owned();
        let (mount, body) = match self {
            Self::Token | Self::TokenFile(_) => return Ok(None),
            Self::UserPass { mount, username, password } => {
                // The username becomes one path segment, checked by the same
                // rules as every path (no `..`, escapes, `?` or `#`): the
                // request path itself would read a `?` as a query string.
                let one_segment = super::path::VaultPath::parse(username).is_ok_and(|p| p.segments().count() == 1);
                if !one_segment {
                    return Err(VaultError::Config(format!(
                        "userpass username {} must be one path segment",
                        super::path::shown(username)
                    )));
                }
                login = format!("login/{username}");
                (mount, json!({ "password": secret(password)?.expose_secret() }))
            }
            Self::AppRole { mount, role_id, secret_id } => (
                mount,
                json!({ "role_id": secret(role_id)?.expose_secret(), "secret_id": secret(secret_id)?.expose_secret() }),
            ),
            Self::Kubernetes { mount, role, jwt_path } => {
                let jwt =
                    SecretRef::File(jwt_path.clone()).resolve(base).map_err(|e| VaultError::Config(e.to_string()))?;
                (mount, json!({ "role": role, "jwt": jwt.expose_secret() }))
            }
            Self::Jwt { mount, role, jwt } => (mount, json!({ "role": role, "jwt": secret(jwt)?.expose_secret() })),
        };
        let path = format!("auth/{}/{login}", mount.trim_matches('/'));
        // Logins are not retried here: the token watcher backs off instead.
        let body = zeroize::Zeroizing::new(body.to_string());
        let resp = client.request_with("POST", &path, Some(body.to_string()), false, RequestRetry::NONE).await?;
        let auth = resp.body.as_ref().map(|b| &b["auth"]).filter(|a| a.is_object()).ok_or_else(|| {
            VaultError::Protocol { path: path.clone(), message: "login answer has no auth block".into() }
        })?;
        let token = auth["client_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| VaultError::Protocol { path: path.clone(), message: "no auth.client_token".into() })?;
        client.set_token(SecretString::from(token.to_owned()));
        Ok(Some(lease_from(auth, "lease_duration", "token_policies")))
    }

    /// For a token file: if the file now holds a different token, check it
    /// with Vault (`lookup-self` as that token) and, if Vault accepts it,
    /// give it to `client` and return its lease. `Ok(None)` if there is
    /// nothing new (or no file). A token Vault refuses is an error, and the
    /// client keeps the token it had.
    pub async fn reload_token(
        &self,
        client: &VaultClient,
        base: &std::path::Path,
    ) -> Result<Option<TokenLease>, VaultError> {
        let Self::TokenFile(path) = self else { return Ok(None) };
        let token = SecretRef::File(path.clone()).resolve(base).map_err(|e| VaultError::Config(e.to_string()))?;
        if token.expose_secret().is_empty() || token.expose_secret() == client.token().expose_secret() {
            return Ok(None);
        }
        let resp = client.request_as(&token, "GET", "auth/token/lookup-self", None).await?;
        client.set_token(token);
        Ok(Some(lease_from(&resp.body.unwrap_or(Value::Null)["data"], "ttl", "policies")))
    }
}

/// Parse a token's lease from an `auth` block (login, renew) or a
/// lookup's `data` (`ttl`, `policies`).
pub fn lease_from(v: &Value, ttl_key: &str, policies_key: &str) -> TokenLease {
    TokenLease {
        ttl: super::leases::ttl(&v[ttl_key]),
        renewable: v["renewable"].as_bool().unwrap_or(false),
        policies: v[policies_key]
            .as_array()
            .or_else(|| v["policies"].as_array())
            .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        accessor: v["accessor"].as_str().unwrap_or_default().to_owned(),
    }
}

impl VaultClient {
    /// `auth/token/lookup-self`: the current token's TTL and policies.
    pub async fn lookup_self(&self) -> Result<TokenLease, VaultError> {
        let resp = self.request("GET", "auth/token/lookup-self", None).await?;
        Ok(lease_from(&resp.body.unwrap_or(Value::Null)["data"], "ttl", "policies"))
    }

    /// `auth/token/renew-self`. Not retried: the watcher decides.
    pub async fn renew_self(&self, increment: Option<Duration>) -> Result<TokenLease, VaultError> {
        let body = increment.map(|i| json!({ "increment": format!("{}s", i.as_secs()) }).to_string());
        let resp = self.request_with("POST", "auth/token/renew-self", body, true, RequestRetry::NONE).await?;
        Ok(lease_from(&resp.body.unwrap_or(Value::Null)["auth"], "lease_duration", "token_policies"))
    }
}
