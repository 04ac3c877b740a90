//! `[sql.connections.<name>]`: the SQL databases plugins may reach through
//! the host's `sql` import, by name.
//!
//! A connection is a PostgreSQL URL (host, port, database, options) and a
//! reference to the admin credentials the host connects with: a Vault KV
//! secret with `username` and `password` fields, or two environment
//! variables. Credentials are never written in the config (a URL holding a
//! user or password is an error) and are resolved each time the host
//! connects, so they may themselves be rotated. Plugins only ever see the
//! name; jobs are granted connections in `[[jobs.grants]]` (`sql = "name"`).
//!
//! ```toml
//! [sql.connections.app]
//! url = "postgres://db.internal:5432/app"
//! credentials = { vault = { mount = "secret", path = "pg/admin" } }
//! # or: credentials = { env = { username = "PGUSER", password = "PGPASSWORD" } }
//! ```

use std::collections::BTreeSet;
use std::ops::Range;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::Collector;
use super::parse::{section, valid_id};
pub use crate::plugin::connections::{SqlConnection, SqlConnections, SqlCredentials};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    url: Spanned<String>,
    credentials: Spanned<toml::Value>,
}

/// What the `[sql]` section declares: the valid connections, and the names
/// of those with errors (already reported, so grants naming them are not
/// reported again as undeclared).
#[derive(Debug, Default)]
pub(super) struct Declared {
    pub connections: SqlConnections,
    pub broken: BTreeSet<String>,
}

const CREDENTIALS_SHAPE: &str = "credentials must be a reference, { vault = { mount, path } } or \
                                 { env = { username, password } }; admin credentials are never written inline";

/// Parse the `[sql]` section, reporting every problem.
pub(super) fn sql_section(c: &mut Collector, value: Spanned<DeValue<'_>>, has_vault: bool) -> Declared {
    let mut out = Declared::default();
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        c.error(span, "`sql` must be a table ([sql.connections.<name>])");
        return out;
    };
    for (key, value) in table {
        if key.get_ref() != "connections" {
            c.error(key.span(), format!("unknown key `sql.{}` (expected sql.connections)", key.get_ref()));
            continue;
        }
        let span = value.span();
        let DeValue::Table(connections) = value.into_inner() else {
            c.error(span, "`sql.connections` must be a table of connections ([sql.connections.<name>])");
            continue;
        };
        for (name, value) in connections {
            let name_span = name.span();
            let name = name.into_inner().into_owned();
            match connection(c, &name, name_span, value, has_vault) {
                Some(conn) => drop(out.connections.insert(name, conn)),
                None => drop(out.broken.insert(name)),
            }
        }
    }
    out
}

/// One `[sql.connections.<name>]`; `None` if anything about it is wrong.
fn connection(
    c: &mut Collector,
    name: &str,
    name_span: Range<usize>,
    value: Spanned<DeValue<'_>>,
    has_vault: bool,
) -> Option<SqlConnection> {
    let before = c.count();
    if !valid_id(name) {
        c.error(
            name_span,
            format!("connection name `{name}` must be 1-64 of a-z, 0-9, `-` and `_`, starting with a letter or digit"),
        );
    }
    let raw = section::<RawConnection>(c, value)?;
    if let Err(why) = check_url(raw.url.get_ref()) {
        c.error(raw.url.span(), format!("sql connection `{name}`: {why}"));
    }
    let cred_span = raw.credentials.span();
    let credentials = match raw.credentials.into_inner() {
        toml::Value::Table(t) if t.len() == 1 && (t.contains_key("vault") || t.contains_key("env")) => {
            toml::Value::Table(t).try_into::<SqlCredentials>().map_err(|e| c.toml_error(&e, cred_span.clone())).ok()
        }
        _ => {
            c.error(cred_span.clone(), format!("sql connection `{name}`: {CREDENTIALS_SHAPE}"));
            None
        }
    };
    if let Some(SqlCredentials::Vault(_)) = &credentials
        && !has_vault
    {
        c.error(
            cred_span.clone(),
            format!("sql connection `{name}`: {}: use {{ env = {{ … }} }}", super::parse::NO_VAULT),
        );
    }
    if let Some(SqlCredentials::Vault(loc)) = &credentials {
        for (what, p) in [("mount", &loc.mount), ("path", &loc.path)] {
            if let Err(why) = crate::plugin::grants::validate_path(p) {
                c.error(cred_span.clone(), format!("sql connection `{name}`: credentials {what}: {why}"));
            }
        }
    }
    let credentials = credentials?;
    (c.count() == before).then(|| SqlConnection { name: name.to_owned(), url: raw.url.into_inner(), credentials })
}

/// A URL must parse, name a host and hold no credentials. The message never
/// repeats the URL (it may hold a password by mistake).
fn check_url(url: &str) -> Result<(), String> {
    let config = tokio_postgres::Config::from_str(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    if config.get_password().is_some() || config.get_user().is_some() {
        return Err("the URL must not hold credentials; reference them with \
                    credentials = { vault = { mount, path } } or { env = { username, password } }"
            .into());
    }
    if config.get_hosts().is_empty() {
        return Err("the URL names no host".into());
    }
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err("sslmode=require is not supported yet: rotator connects to PostgreSQL without TLS".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        for url in
            ["postgres://admin:hunter22@db/app", "postgres://admin@db/app", "host=db user=admin password=hunter22"]
        {
            let err = check_url(url).unwrap_err();
            assert!(err.contains("must not hold credentials"), "{err}");
            assert!(!err.contains("hunter22") && !err.contains("admin"), "{err}");
        }
        assert!(check_url("postgres://db.internal:5432/app").is_ok());
        assert!(check_url("postgres:///app").unwrap_err().contains("no host"));
        assert!(check_url("postgres://db/app?sslmode=require").unwrap_err().contains("TLS"));
        assert!(check_url("mysql://db/app").is_err());
    }
}
