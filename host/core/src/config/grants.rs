//! `[[jobs.grants]]`: what a job's plugin may use, as the operator writes it.
//!
//! A grant names exactly one of: Vault paths (`path` plus `operations`:
//! read, write, delete, list), one declared SQL connection (`sql` plus
//! optional `operations`: execute, query, login; all three by default), or
//! one HTTP origin (`http = "https://host:port"` plus optional `paths`,
//! prefixes on whole segments, and `methods`; any path and method when
//! absent). Everything is checked here with its location, and every
//! problem is reported at once: pattern syntax, operation names, that an
//! SQL grant names a connection declared under `[sql.connections]`, and an
//! HTTP grant's origin, each path and each method
//! ([`crate::plugin::HttpGrant`]). HTTP grants are stored canonical
//! (`http://rabbit.internal:80`), as requests are compared.
//!
//! ```toml
//! [[jobs.grants]]
//! path = "database/rotate-root/orders"
//! operations = ["write"]
//!
//! [[jobs.grants]]
//! sql = "app"
//! operations = ["execute", "login"]
//!
//! [[jobs.grants]]
//! http = "https://rabbit.internal:15672"
//! paths = ["/api/users/", "/api/permissions/%2F/"]
//! methods = ["GET", "PUT", "DELETE"]
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::Collector;
use super::sql::{Declared, SqlConnections};
use crate::plugin::grants::{GrantError, UrlPath, canonical_origin, http_method};
use crate::plugin::{Grants, HttpGrant, Operation, SqlGrant, SqlOperation, VaultGrant};
use crate::vault::path::shown;

/// One grant as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    sql: Option<Spanned<String>>,
    #[serde(default)]
    operations: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    http: Option<Spanned<String>>,
    #[serde(default)]
    paths: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    methods: Option<Vec<Spanned<String>>>,
}

/// Check a job's grants. Returns them with the declared connections they
/// name (the only ones the job's runs will know about).
pub(super) fn grants(
    c: &mut Collector,
    raw: Vec<Spanned<RawGrant>>,
    declared: &Declared,
    has_vault: bool,
) -> (Grants, SqlConnections) {
    let mut grants = Grants::default();
    let mut granted = SqlConnections::new();
    for item in raw {
        let span = item.span();
        let g = item.into_inner();
        if g.http.is_none() && (g.paths.is_some() || g.methods.is_some()) {
            c.error(span.clone(), "`paths` and `methods` belong to an `http` grant");
        }
        match (g.path, g.sql, g.http) {
            (None, None, None) => {
                c.error(span, "a grant needs `path` (Vault), `sql` (a connection name) or `http` (an origin)")
            }
            (Some(path), None, None) => {
                let operations = operations(
                    c,
                    g.operations.unwrap_or_default(),
                    "a Vault",
                    Operation::parse,
                    "read, write, delete, list",
                );
                let grant = VaultGrant { path, operations };
                if !has_vault {
                    c.error(span.clone(), format!("a Vault grant, but {}", super::parse::NO_VAULT));
                }
                match grant.validate() {
                    Ok(()) => grants.vault.push(grant),
                    Err(why) => c.error(span, why.to_string()),
                }
            }
            (None, Some(name), None) => {
                let operations = match g.operations {
                    None => SqlOperation::ALL.to_vec(),
                    Some(ops) => operations(c, ops, "an sql", SqlOperation::parse, "execute, query, login"),
                };
                if operations.is_empty() {
                    c.error(span, format!("grant for sql connection `{}` lists no operations", name.get_ref()));
                }
                match declared.connections.get(name.get_ref()) {
                    Some(conn) => {
                        granted.insert(conn.name.clone(), conn.clone());
                        grants.sql.push(SqlGrant { connection: name.into_inner(), operations });
                    }
                    // Its own errors were reported; the job is invalid anyway.
                    None if declared.broken.contains(name.get_ref()) => {
                        c.error(name.span(), format!("sql connection `{}` has errors (see above)", name.get_ref()))
                    }
                    None => c.error(
                        name.span(),
                        format!(
                            "sql connection `{0}` is not declared (add a [sql.connections.{0}] section)",
                            name.get_ref()
                        ),
                    ),
                }
            }
            (None, None, Some(origin)) => {
                if g.operations.is_some() {
                    c.error(span, "an `http` grant lists `methods`, not `operations`");
                }
                if let Some(grant) = http_grant(c, origin, g.paths.unwrap_or_default(), g.methods.unwrap_or_default()) {
                    grants.http.push(grant);
                }
            }
            _ => c.error(
                span,
                "a grant names one of a Vault `path`, an `sql` connection or an `http` origin, not several",
            ),
        }
    }
    (grants, granted)
}

/// Check an HTTP grant part by part, each problem where it is written; the
/// canonical grant if all is well.
fn http_grant(
    c: &mut Collector,
    origin: Spanned<String>,
    paths: Vec<Spanned<String>>,
    methods: Vec<Spanned<String>>,
) -> Option<HttpGrant> {
    let before = c.count();
    if let Err(why) = canonical_origin(origin.get_ref()) {
        let quoted = shown(origin.get_ref());
        c.error(origin.span(), GrantError::Origin { origin: quoted, why }.to_string());
    }
    for path in &paths {
        if let Err(why) = UrlPath::parse(path.get_ref()) {
            c.error(path.span(), format!("http grant path `{}`: {why}", shown(path.get_ref())));
        }
    }
    for method in &methods {
        if http_method(method.get_ref()).is_none() {
            c.error(
                method.span(),
                format!(
                    "unknown method `{}` for an http grant (expected GET, HEAD, POST, PUT, PATCH, DELETE)",
                    shown(method.get_ref())
                ),
            );
        }
    }
    if c.count() > before {
        return None;
    }
    let strings = |list: Vec<Spanned<String>>| list.into_iter().map(Spanned::into_inner).collect();
    let grant = HttpGrant { origin: origin.into_inner(), paths: strings(paths), methods: strings(methods) };
    // Every part was checked above, so this cannot fail; were it to, the
    // grant is refused rather than kept in a form requests never match.
    grant.canonical().ok()
}

/// Parse operation names, reporting each unknown one where it is written.
fn operations<T: PartialEq>(
    c: &mut Collector,
    names: Vec<Spanned<String>>,
    kind: &str,
    parse: fn(&str) -> Option<T>,
    known: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    for name in names {
        match parse(name.get_ref()) {
            Some(op) if !out.contains(&op) => out.push(op),
            Some(_) => {}
            None => c.error(
                name.span(),
                format!("unknown operation `{}` for {kind} grant (expected {known})", name.get_ref()),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;
    use crate::plugin::HttpGrant;

    const JOB: &str = "[[jobs]]\nid = \"j\"\nplugin = \"kv-random\"\nsecret = { mount = \"secret\", path = \"a\" }\n\
                       interval = \"1h\"\n";

    fn config(grants: &str) -> Result<crate::config::Config, String> {
        parse("t.toml", &format!("{JOB}{grants}"), Path::new(".")).map_err(|e| e.to_string())
    }

    #[test]
    fn http_grants_are_parsed_and_stored_canonical() {
        let c = config(
            "[[jobs.grants]]\nhttp = \"HTTPS://Rabbit.Internal:15672/\"\npaths = [\"/api/users/\", \"/api/permissions/%2f/\"]\n\
             methods = [\"get\", \"PUT\"]\n\n[[jobs.grants]]\nhttp = \"http://127.0.0.1\"\n",
        )
        .unwrap();
        let http = &c.jobs[0].grants.http;
        assert_eq!(
            http[0],
            HttpGrant {
                origin: "https://rabbit.internal:15672".into(),
                paths: vec!["/api/users/".into(), "/api/permissions/%2F/".into()],
                methods: vec!["GET".into(), "PUT".into()],
            }
        );
        assert_eq!(http[1], HttpGrant { origin: "http://127.0.0.1:80".into(), paths: vec![], methods: vec![] });
        let g = &c.jobs[0].grants;
        assert!(g.check_http("PUT", "https://rabbit.internal:15672/api/users/app").is_ok());
        assert!(g.check_http("DELETE", "https://rabbit.internal:15672/api/users/app").is_err());
        assert!(g.check_http("POST", "http://127.0.0.1/anything").is_ok());
    }

    #[test]
    fn every_http_grant_problem_is_reported_at_once_where_it_is_written() {
        let text = "[[jobs.grants]]\nhttp = \"https://granted@evil/\"\n\n\
                    [[jobs.grants]]\nhttp = \"https://h\"\npaths = [\"/ok\", \"/a/../b\", \"api\"]\nmethods = [\"GET\", \"OPTIONS\"]\n\n\
                    [[jobs.grants]]\nhttp = \"https://h/api\"\n\n\
                    [[jobs.grants]]\nhttp = \"https://h\"\noperations = [\"read\"]\n\n\
                    [[jobs.grants]]\npath = \"secret/x\"\noperations = [\"read\"]\nmethods = [\"GET\"]\n\n\
                    [[jobs.grants]]\nhttp = \"https://h\"\nsql = \"app\"\n\n\
                    [[jobs.grants]]\nhttp = \"https://h\"\npath = \"secret/x\"\n\n\
                    [[jobs.grants]]\npaths = [\"/x\"]\n";
        let err = config(text).unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        let expected = [
            "t.toml:7:8: error: grant origin `https://granted@evil/`: the URL holds user info (`user@`); credentials go in the request's auth",
            "t.toml:11:17: error: http grant path `/a/../b`: the path has a `.` or `..` segment",
            "t.toml:11:28: error: http grant path `api`: the path does not start with `/`",
            "t.toml:12:19: error: unknown method `OPTIONS` for an http grant (expected GET, HEAD, POST, PUT, PATCH, DELETE)",
            "t.toml:15:8: error: grant origin `https://h/api`: an origin is scheme, host and optional port only (no path or query)",
            "t.toml:17:1: error: an `http` grant lists `methods`, not `operations`",
            "t.toml:21:1: error: `paths` and `methods` belong to an `http` grant",
            "t.toml:26:1: error: a grant names one of a Vault `path`, an `sql` connection or an `http` origin, not several",
            "t.toml:30:1: error: a grant names one of a Vault `path`, an `sql` connection or an `http` origin, not several",
            "t.toml:34:1: error: `paths` and `methods` belong to an `http` grant",
            "t.toml:34:1: error: a grant needs `path` (Vault), `sql` (a connection name) or `http` (an origin)",
        ];
        assert_eq!(lines, expected, "{err}");
    }
}
