//! The SQL connections the host's `sql` import reaches, by name: the
//! capability's own types, beside the capability. `[sql.connections.<name>]`
//! in the config is parsed into these (`config::sql`); plugins only ever
//! see the name.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::vault::kv::SecretLocation;

/// Declared connections by name.
pub type SqlConnections = BTreeMap<String, SqlConnection>;

/// How long connecting may take when the URL does not say
/// (`connect_timeout`).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One declared connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlConnection {
    pub name: String,
    /// The URL as written: no credentials, checked to parse.
    pub url: String,
    pub credentials: SqlCredentials,
}

impl SqlConnection {
    /// The URL as a tokio-postgres config, without credentials, with a
    /// connect timeout.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        // Checked when the config was parsed.
        let mut config = tokio_postgres::Config::from_str(&self.url).unwrap_or_default();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config
    }
}

/// Where a connection's admin credentials come from. Never the values.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SqlCredentials {
    /// A KV secret (read with the daemon's own Vault identity) holding
    /// `username` and `password` fields.
    Vault(SecretLocation),
    /// The names of two environment variables.
    Env { username: String, password: String },
}
