//! Capability grants: which Vault paths and operations, which SQL
//! connections and operations, and which HTTP origins, paths and methods a
//! job's plugin may use.
//!
//! Grants are data in the job's TOML and are denied by default. Paths match
//! the way Vault policy paths do, so operators read them the same way: `+`
//! stands for exactly one path segment, a trailing `*` for any rest (including
//! nothing), anything else matches literally. SQL connections are matched by
//! their exact name.
//!
//! A path is matched only as a [`VaultPath`]: the canonical form the Vault
//! client also builds its URL from ([`crate::vault::path`]), so what a grant
//! allows is exactly what reaches Vault. Text that does not parse (`..`,
//! `%2e`, `?`, `\`, …) matches no grant.
//!
//! HTTP grants (an origin, path prefixes, methods) and the check of a
//! plugin's request against them live in [`http`], with the URL path rules
//! in [`url_path`] and the addresses no name may resolve to in [`address`].
//!
//! A dry run adds one rule on top: [`Grants::to_read_only`] keeps the job's
//! grants but refuses everything that could change state, so `plan` may look
//! and never touch, whatever the job is granted.

pub mod address;
pub mod http;
pub mod url_path;

use serde::{Deserialize, Serialize};

pub use self::address::forbidden_address;
pub use self::http::{
    HTTP_METHODS, HttpGrant, HttpRefusal, HttpTarget, RefusalKind, UrlError, canonical_origin, http_method,
};
pub use self::url_path::{UrlPath, UrlPathError};
use crate::vault::path::{PathError, VaultPath};

/// An operation on a Vault path, in policy terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    Write,
    Delete,
    List,
}

impl Operation {
    /// Every operation, in policy order.
    pub const ALL: [Self; 4] = [Self::Read, Self::Write, Self::Delete, Self::List];

    /// The operation called `name` in a grant.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// The operation an HTTP method (or Vault's LIST) performs.
    pub fn from_method(method: &str) -> Option<Self> {
        match method.to_ascii_uppercase().as_str() {
            "GET" => Some(Self::Read),
            "POST" | "PUT" | "PATCH" => Some(Self::Write),
            "DELETE" => Some(Self::Delete),
            "LIST" => Some(Self::List),
            _ => None,
        }
    }

    /// Whether the operation can change state in Vault (`write`, `delete`).
    pub fn changes_state(self) -> bool {
        matches!(self, Self::Write | Self::Delete)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::List => "list",
        }
    }
}

/// One grant: a path pattern and the operations allowed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultGrant {
    pub path: String,
    pub operations: Vec<Operation>,
}

impl VaultGrant {
    /// Check the pattern's syntax: `*` only at the end, no empty segments.
    pub fn validate(&self) -> Result<(), GrantError> {
        validate_pattern(&self.path)?;
        if self.operations.is_empty() {
            return Err(GrantError::NoOperations(self.path.clone()));
        }
        Ok(())
    }

    fn allows(&self, op: Operation, path: &VaultPath) -> bool {
        self.operations.contains(&op) && path_matches(&self.path, path.as_str())
    }
}

/// What a plugin does with an SQL connection: the functions of the `sql`
/// import it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlOperation {
    /// `sql.execute`.
    Execute,
    /// `sql.query`.
    Query,
    /// `sql.try-login`.
    Login,
}

impl SqlOperation {
    /// Every operation, the default of a grant that lists none.
    pub const ALL: [Self; 3] = [Self::Execute, Self::Query, Self::Login];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Query => "query",
            Self::Login => "login",
        }
    }

    /// The operation called `name` in a grant.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether the operation can change state in the database. Only a login
    /// probe cannot: `execute` runs any statement, and so can `query` (a
    /// `SELECT` may call a function that writes, `WITH … DELETE … RETURNING`
    /// is a query too), and the host cannot tell them apart from the text.
    pub fn changes_state(self) -> bool {
        !matches!(self, Self::Login)
    }
}

/// One SQL grant: a declared connection (by name) and the operations allowed
/// on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlGrant {
    pub connection: String,
    pub operations: Vec<SqlOperation>,
}

/// What a plugin asks for in `describe` (informative: the job's grants
/// decide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Vault paths and operations.
    Vault(VaultGrant),
    /// An SQL connection by name; `*` for the one the job's settings name.
    Sql(String),
    /// HTTP requests to an origin.
    Http(HttpGrant),
}

/// Everything a job's plugin may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub vault: Vec<VaultGrant>,
    pub sql: Vec<SqlGrant>,
    pub http: Vec<HttpGrant>,
    /// Refuse every operation that changes state, whatever `vault`, `sql`
    /// and `http` allow (see [`Grants::to_read_only`]).
    pub read_only: bool,
}

impl Grants {
    /// These grants for a dry run: reads and lists on Vault and SQL login
    /// probes as granted; every Vault write or delete, every SQL
    /// statement and every HTTP method but `GET` and `HEAD` refused (see
    /// [`Operation::changes_state`], [`SqlOperation::changes_state`] and
    /// [`Grants::check_http`]).
    pub fn to_read_only(&self) -> Self {
        Self { read_only: true, ..self.clone() }
    }

    /// Is `op` on `path` (no leading `/v1/`) allowed? The text is parsed
    /// first; a path that is not canonical is allowed nowhere.
    pub fn allows(&self, op: Operation, path: &str) -> bool {
        VaultPath::parse(path).is_ok_and(|p| self.allows_path(op, &p))
    }

    /// Is `op` on the canonical `path` allowed?
    pub fn allows_path(&self, op: Operation, path: &VaultPath) -> bool {
        if self.read_only && op.changes_state() {
            return false;
        }
        self.vault.iter().any(|g| g.allows(op, path))
    }

    /// Is `op` on the SQL connection `connection` allowed?
    pub fn allows_sql(&self, op: SqlOperation, connection: &str) -> bool {
        if self.read_only && op.changes_state() {
            return false;
        }
        self.sql.iter().any(|g| g.connection == connection && g.operations.contains(&op))
    }

    /// Exactly what a plugin declares in `describe`, as grants. A declared
    /// SQL connection `*` means the one the job's settings name
    /// (`connection`), and a declared HTTP origin `*` the origin of their
    /// `url` (`describe` sees no settings); without one, such a declaration
    /// grants nothing. Declared HTTP grants are kept only if valid.
    pub fn from_capabilities(capabilities: &[Capability], connection: Option<&str>, url: Option<&str>) -> Self {
        let mut grants = Self::default();
        let url_origin = url.and_then(|u| url::Url::parse(u).ok()).and_then(|u| http::origin_of(&u).ok());
        for c in capabilities {
            match c {
                Capability::Vault(g) => grants.vault.push(g.clone()),
                Capability::Http(g) => {
                    let origin = if g.origin == "*" { url_origin.clone() } else { Some(g.origin.clone()) };
                    let grant = origin.map(|origin| HttpGrant { origin, ..g.clone() });
                    if let Some(grant) = grant.and_then(|g| g.canonical().ok()) {
                        grants.http.push(grant);
                    }
                }
                Capability::Sql(name) => {
                    let name = if name == "*" { connection } else { Some(name.as_str()) };
                    if let Some(name) = name {
                        let operations = SqlOperation::ALL.to_vec();
                        grants.sql.push(SqlGrant { connection: name.to_owned(), operations });
                    }
                }
            }
        }
        grants
    }
}

/// Refuse a path that is not canonical ([`VaultPath::parse`]), saying why.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    VaultPath::parse(path).map(drop)
}

/// Why a grant was refused. Grants are configuration, never secret, so the
/// pattern (or origin, path, method) is quoted, as a bounded excerpt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant path is empty")]
    Empty,
    #[error("grant path `{0}`: `*` may only stand at the end")]
    StarNotAtEnd(String),
    #[error("grant path `{0}`: `+` must be a whole segment")]
    PartialPlus(String),
    #[error("grant path: {0}")]
    Path(PathError),
    #[error("grant for `{0}` lists no operations")]
    NoOperations(String),
    #[error("grant origin `{origin}`: {why}")]
    Origin { origin: String, why: UrlError },
    #[error("grant for `{origin}`: path `{path}`: {why}")]
    HttpPath { origin: String, path: String, why: UrlPathError },
    #[error("grant for `{origin}`: unknown method `{method}` (expected GET, HEAD, POST, PUT, PATCH or DELETE)")]
    HttpMethod { origin: String, method: String },
}

/// A pattern is a canonical path with `+` segments and at most a trailing
/// `*`: anything else could never match a canonical path, and would only
/// mislead its reader.
fn validate_pattern(pattern: &str) -> Result<(), GrantError> {
    let p = pattern.strip_prefix('/').unwrap_or(pattern);
    if p.trim_end_matches('/').is_empty() {
        return Err(GrantError::Empty);
    }
    if let Some(i) = p.find('*')
        && i != p.len() - 1
    {
        return Err(GrantError::StarNotAtEnd(pattern.to_owned()));
    }
    let body = p.trim_end_matches('*');
    for seg in body.split('/') {
        if seg.contains('+') && seg != "+" {
            return Err(GrantError::PartialPlus(pattern.to_owned()));
        }
    }
    match VaultPath::parse(body) {
        Ok(_) | Err(PathError::Empty) => Ok(()),
        // `secret/*` leaves `secret/` (fine); `secret//*` an empty segment.
        Err(e) => Err(GrantError::Path(e)),
    }
}

/// Vault policy path matching: `+` is one segment, a trailing `*` any rest.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_start_matches('/');
    let path = path.trim_start_matches('/');
    let segment_matches = |pat: &str, seg: &str| if pat == "+" { !seg.is_empty() } else { pat == seg };
    let Some(body) = pattern.strip_suffix('*') else {
        let pats: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        return pats.len() == segs.len() && pats.iter().zip(&segs).all(|(p, s)| segment_matches(p, s));
    };
    // Whole segments first, then the last (partial) one as a string prefix.
    let mut pats: Vec<&str> = body.split('/').collect();
    let last = pats.pop().unwrap_or_default();
    let mut rest = path;
    for pat in pats {
        match rest.split_once('/') {
            Some((head, tail)) if segment_matches(pat, head) => rest = tail,
            _ => return false,
        }
    }
    if last == "+" { !rest.is_empty() } else { rest.starts_with(last) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_http_origin_star_is_the_settings_url() {
        let declared = HttpGrant { origin: "*".into(), paths: vec!["/api/users/".into()], methods: vec!["put".into()] };
        let caps = [Capability::Http(declared)];
        let grants = Grants::from_capabilities(&caps, None, Some("HTTP://Rabbit.Internal:15672/base"));
        assert_eq!(grants.http.len(), 1);
        assert_eq!(grants.http[0].origin, "http://rabbit.internal:15672");
        assert_eq!(grants.http[0].methods, ["PUT"]);
        assert!(Grants::from_capabilities(&caps, None, None).http.is_empty(), "no url: nothing granted");
        assert!(Grants::from_capabilities(&caps, None, Some("not a url")).http.is_empty());
    }

    #[test]
    fn literal_paths_match_exactly() {
        assert!(path_matches("secret/data/app", "secret/data/app"));
        assert!(!path_matches("secret/data/app", "secret/data/app2"));
        assert!(!path_matches("secret/data/app", "secret/data"));
        assert!(!path_matches("secret/data/app", "secret/data/app/x"));
    }

    #[test]
    fn trailing_star_is_a_prefix() {
        assert!(path_matches("secret/data/*", "secret/data/app"));
        assert!(path_matches("secret/data/*", "secret/data/a/b/c"));
        assert!(path_matches("secret/data/*", "secret/data/"));
        assert!(path_matches("secret/da*", "secret/data/x"));
        assert!(!path_matches("secret/data/*", "secret/metadata/app"));
        assert!(path_matches("*", "anything/at/all"));
    }

    #[test]
    fn plus_is_one_segment() {
        assert!(path_matches("+/rotate-root/*", "database/rotate-root/pg"));
        assert!(path_matches("secret/+/app", "secret/data/app"));
        assert!(!path_matches("secret/+/app", "secret/data/x/app"));
        assert!(!path_matches("secret/+", "secret"));
        assert!(path_matches("secret/+", "secret/x"));
    }

    #[test]
    fn grants_check_operation_and_path() {
        let grants = Grants {
            vault: vec![VaultGrant { path: "secret/data/demo/*".into(), operations: vec![Operation::Read] }],
            sql: Vec::new(),
            http: Vec::new(),
            read_only: false,
        };
        assert!(grants.allows(Operation::Read, "/secret/data/demo/app"));
        assert!(!grants.allows(Operation::Write, "secret/data/demo/app"));
        assert!(!grants.allows(Operation::Read, "secret/data/other"));
    }

    #[test]
    fn sql_grants_check_connection_name_and_operation() {
        let grants = Grants {
            vault: Vec::new(),
            sql: vec![SqlGrant { connection: "app".into(), operations: vec![SqlOperation::Execute] }],
            http: Vec::new(),
            read_only: false,
        };
        assert!(grants.allows_sql(SqlOperation::Execute, "app"));
        assert!(!grants.allows_sql(SqlOperation::Login, "app"));
        assert!(!grants.allows_sql(SqlOperation::Execute, "app2"));
        assert!(!grants.allows_sql(SqlOperation::Execute, "*"), "a grant names one connection, never a pattern");
        assert_eq!(SqlOperation::parse("login"), Some(SqlOperation::Login));
        assert_eq!(SqlOperation::parse("write"), None);
    }

    #[test]
    fn read_only_grants_refuse_everything_that_changes_state() {
        let all = |path: &str| VaultGrant { path: path.into(), operations: Operation::ALL.to_vec() };
        let grants = Grants {
            vault: vec![all("secret/*")],
            sql: vec![SqlGrant { connection: "app".into(), operations: SqlOperation::ALL.to_vec() }],
            http: Vec::new(),
            read_only: false,
        }
        .to_read_only();
        assert!(grants.allows(Operation::Read, "secret/data/x"));
        assert!(grants.allows(Operation::List, "secret/metadata/"));
        assert!(!grants.allows(Operation::Write, "secret/data/x"));
        assert!(!grants.allows(Operation::Delete, "secret/data/x"));
        assert!(grants.allows_sql(SqlOperation::Login, "app"));
        assert!(!grants.allows_sql(SqlOperation::Execute, "app"));
        assert!(!grants.allows_sql(SqlOperation::Query, "app"), "a query can change state too");
        assert!(!grants.allows(Operation::Read, "other/x"), "read-only never grants more");
    }

    #[test]
    fn patterns_are_validated() {
        let bad = |p: &str| VaultGrant { path: p.into(), operations: vec![Operation::Read] }.validate().is_err();
        assert!(bad("secret/*/x"));
        assert!(bad("secret/a+b"));
        assert!(bad(""));
        for ambiguous in ["secret/../sys/*", "secret/%2e%2e/*", "secret/a?b", "secret//x", "secret\\x/*"] {
            assert!(bad(ambiguous), "{ambiguous}");
        }
        assert!(!bad("*"));
        assert!(!bad("secret/data/allowed/*"));
        assert!(!bad("secret/+/x*"));
        assert!(VaultGrant { path: "a".into(), operations: vec![] }.validate().is_err());
    }

    #[test]
    fn paths_with_dot_segments_are_rejected() {
        assert!(validate_path("secret/../sys").is_err());
        assert!(validate_path("secret//x").is_err());
        assert!(validate_path("secret/x").is_ok());
    }

    #[test]
    fn text_that_is_not_canonical_matches_no_grant() {
        let all = VaultGrant { path: "*".into(), operations: Operation::ALL.to_vec() };
        let grants = Grants { vault: vec![all], ..Grants::default() };
        assert!(grants.allows(Operation::Read, "sys/policy/x"));
        for raw in ["secret/%2e%2e/sys", "a?b", "a/../b", "a\\b", "http://x/y", ""] {
            assert!(!grants.allows(Operation::Read, raw), "{raw:?}");
        }
    }
}
