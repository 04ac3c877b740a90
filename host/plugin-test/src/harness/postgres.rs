//! A real PostgreSQL behind the dev server's database engine, for plugins
//! that drive Vault's database secrets engine (like `database-root`).
//!
//! Given a URL, the harness mounts the engine at `database/`, configures
//! connection `harness` to log in as the URL's user (a templated URL, so
//! Vault can rotate that user's password: use a throwaway user) and adds a
//! role `harness` whose credentials are short-lived login roles. The
//! password goes to the dev server only; the report names host, port,
//! database and user.
//!
//! When a plugin can declare a direct `sql` capability, the same URL is the
//! database its connection reaches.

use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use zeroize::Zeroizing;

use super::HarnessError;
use rotator_core::vault::VaultClient;

/// The connection and role the harness configures.
pub(super) const NAME: &str = "harness";

/// The parts of a `postgres://user:password@host:port/db` URL.
struct Target {
    user: String,
    password: Zeroizing<String>,
    host: String,
    port: u16,
    database: String,
}

fn parse(url: &SecretString) -> Result<Target, HarnessError> {
    let err = |m: &str| HarnessError::Postgres(m.to_owned());
    // The parser's own message could quote the URL, password included.
    let parsed = reqwest::Url::parse(url.expose_secret()).map_err(|_| err("the URL cannot be parsed"))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(err("the URL must start with postgres:// or postgresql://"));
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let user = decode(parsed.username());
    if user.is_empty() {
        return Err(err("the URL names no user"));
    }
    let database = match parsed.path().trim_start_matches('/') {
        "" => "postgres".to_owned(),
        db => decode(db),
    };
    Ok(Target {
        password: Zeroizing::new(parsed.password().map(decode).unwrap_or_default()),
        host: parsed.host_str().ok_or_else(|| err("the URL names no host"))?.to_owned(),
        port: parsed.port().unwrap_or(5432),
        database,
        user,
    })
}

/// Mount and configure the database engine; returns how to name the
/// database in the report.
pub(super) async fn mount_database(vault: &VaultClient, url: &SecretString) -> Result<String, HarnessError> {
    let t = parse(url)?;
    let templated = format!("postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}", t.host, t.port, t.database);
    let config = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": templated,
        "username": t.user,
        "password": t.password.as_str(),
        "allowed_roles": [NAME],
    });
    let role = json!({
        "db_name": NAME,
        "creation_statements": r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#,
        "default_ttl": "5m",
    });
    let steps = [
        ("sys/mounts/database".to_owned(), json!({"type": "database"}).to_string()),
        (format!("database/config/{NAME}"), config.to_string()),
        (format!("database/roles/{NAME}"), role.to_string()),
    ];
    for (path, body) in steps {
        vault
            .request("POST", &path, Some(body))
            .await
            .map_err(|e| HarnessError::Postgres(format!("configuring {path} on the dev server: {e}")))?;
    }
    Ok(format!("{}:{}/{} (user {})", t.host, t.port, t.database, t.user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_without_showing_the_password() {
        let t = parse(&SecretString::from("postgres://vault%20admin:p%40ss@db.local:6543/orders")).unwrap();
        assert_eq!((t.user.as_str(), t.password.as_str()), ("vault admin", "p@ss"));
        assert_eq!((t.host.as_str(), t.port, t.database.as_str()), ("db.local", 6543, "orders"));
        let t = parse(&SecretString::from("postgresql://u@127.0.0.1")).unwrap();
        assert_eq!((t.port, t.database.as_str()), (5432, "postgres"));
        let e = parse(&SecretString::from("mysql://u:hunter2@h/db")).err().unwrap().to_string();
        assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
    }
}
