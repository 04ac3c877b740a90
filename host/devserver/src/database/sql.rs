//! Statement templates and running them against PostgreSQL, the way Vault's
//! `postgresql-database-plugin` does.
//!
//! Roles carry SQL templates with `{{name}}`, `{{username}}`, `{{password}}`
//! and `{{expiration}}`. Vault fills them by plain text replacement, splits
//! each statement on `;` unless it looks like a multi-line block (a bare
//! `END` outside quotes, as in a `DO $$ ... END $$` body), and runs the
//! pieces in one transaction. This module does the same, plus the default
//! revocation (no statements given) and the one place PostgreSQL errors are
//! turned into text: rendered statements hold passwords, and PostgreSQL may
//! echo pieces of a statement back (`syntax error at or near "..."`), so
//! every error goes through [`describe`], which cuts the echo and replaces
//! every secret it was given with `[password]`.

use std::error::Error as _;

use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Error};

/// Vault's `expirationFormat` ("2006-01-02 15:04:05-0700"), in UTC.
const EXPIRATION_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]+0000");

/// The `{{expiration}}` text for `t`: what `VALID UNTIL` gets.
pub(crate) fn expiration(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(EXPIRATION_FORMAT).unwrap_or_default()
}

/// Vault's `dbutil.QueryHelper`: every `{{key}}` becomes its value.
pub(crate) fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// The queries to run for a list of statements: each statement split on
/// `;` (blank pieces dropped), unless it holds a multi-line block, which
/// runs whole.
pub(crate) fn queries(statements: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for statement in statements {
        if contains_multiline_statement(statement) {
            out.push(statement.trim().to_owned());
            continue;
        }
        out.extend(statement.split(';').map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned));
    }
    out
}

/// Vault's heuristic: the word `END` outside single and double quotes.
fn contains_multiline_statement(statement: &str) -> bool {
    let mut outside = String::with_capacity(statement.len());
    let mut quote: Option<char> = None;
    for c in statement.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None => outside.push(c),
        }
    }
    outside.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|word| word == "END")
}

/// `name` as a quoted PostgreSQL identifier (`pq.QuoteIdentifier`).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\0', "").replace('"', "\"\""))
}

/// `text` as a quoted PostgreSQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\0', "").replace('\'', "''"))
}

/// Run `statements` (templates) with `vars` in one transaction: all or
/// nothing. Errors name the failing step, never the statement.
pub(crate) async fn run_in_transaction(
    client: &mut Client,
    statements: &[String],
    vars: &[(&str, &str)],
    secrets: &[&str],
) -> Result<(), String> {
    let tx =
        client.transaction().await.map_err(|e| format!("unable to start transaction: {}", describe(&e, secrets)))?;
    for query in queries(statements) {
        let rendered = render(&query, vars);
        tx.batch_execute(&rendered).await.map_err(|e| format!("failed to execute query: {}", describe(&e, secrets)))?;
    }
    tx.commit().await.map_err(|e| format!("failed to commit: {}", describe(&e, secrets)))
}

/// Whether a role named `name` exists.
pub(crate) async fn role_exists(client: &Client, name: &str) -> Result<bool, String> {
    let row = client
        .query_one("SELECT exists (SELECT rolname FROM pg_roles WHERE rolname = $1)", &[&name])
        .await
        .map_err(|e| describe(&e, &[]))?;
    row.try_get::<_, bool>(0).map_err(|e| describe(&e, &[]))
}

/// The revocation used when a role has no `revocation_statements`: make the
/// role unable to log in, end its sessions, hand what it owns to the
/// connection's user and drop its privileges, then drop it. Every step but
/// the last is best effort (a non-superuser root may not be allowed some of
/// them); when `DROP OWNED` was refused, Vault's explicit `REVOKE`s of the
/// public schema and the database are tried instead. The revocation counts
/// as done once the role is gone.
pub(crate) async fn drop_role(client: &Client, name: &str) -> Result<(), String> {
    if !role_exists(client, name).await? {
        return Ok(());
    }
    let ident = quote_ident(name);
    let literal = quote_literal(name);
    let best_effort = async |query: String| match client.batch_execute(&query).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %describe(&e, &[]), "vault dev server: database revocation step refused");
            false
        }
    };
    best_effort(format!("ALTER ROLE {ident} NOLOGIN")).await;
    best_effort(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {literal} AND pid <> pg_backend_pid()"
    ))
    .await;
    let reassigned = best_effort(format!("REASSIGN OWNED BY {ident} TO CURRENT_USER")).await;
    let dropped = reassigned && best_effort(format!("DROP OWNED BY {ident}")).await;
    if !dropped {
        for query in [
            format!("REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM {ident}"),
            format!("REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM {ident}"),
            format!("REVOKE USAGE ON SCHEMA public FROM {ident}"),
        ] {
            best_effort(query).await;
        }
        if let Ok(row) = client.query_one("SELECT current_database()", &[]).await
            && let Ok(db) = row.try_get::<_, String>(0)
        {
            best_effort(format!("REVOKE CONNECT ON DATABASE {} FROM {ident}", quote_ident(&db))).await;
        }
    }
    client.batch_execute(&format!("DROP ROLE IF EXISTS {ident}")).await.map_err(|e| describe(&e, &[]))
}

/// A PostgreSQL error as text that is safe to answer and log: severity,
/// message, detail and SQLSTATE for server errors (a syntax error's
/// `at or near "..."` echo cut off), the error and its cause otherwise; and
/// every non-trivial value of `secrets`, plain or percent-encoded, replaced
/// with `[password]`.
pub(crate) fn describe(err: &Error, secrets: &[&str]) -> String {
    let text = match err.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if *db.code() == SqlState::SYNTAX_ERROR
                && let Some(at) = message.find(" at or near ")
            {
                message.truncate(at);
            }
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("{}: {message}{detail} (SQLSTATE {})", db.severity(), db.code().code())
        }
        None => match err.source() {
            Some(cause) => format!("{err}: {cause}"),
            None => err.to_string(),
        },
    };
    redact(&text, secrets)
}

/// `text` with every secret of 4 or more characters (and its URL-encoded
/// form) replaced by `[password]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "[password]");
        let encoded = super::connection::percent_encode(secret);
        if encoded != *secret {
            out = out.replace(&encoded, "[password]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_db_templates_render_like_vaults_query_helper() {
        let t = r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;
        let out = render(t, &[("name", "v-root-x"), ("password", "pw"), ("expiration", "2030-01-02 03:04:05+0000")]);
        assert_eq!(out, r#"CREATE ROLE "v-root-x" WITH LOGIN PASSWORD 'pw' VALID UNTIL '2030-01-02 03:04:05+0000';"#);
        assert_eq!(render("{{unknown}} {{name}}", &[("name", "a")]), "{{unknown}} a");
    }

    #[test]
    fn devserver_db_statements_split_unless_multiline() {
        let one = vec!["CREATE ROLE a; GRANT x TO a;  ;".to_owned(), "SELECT 1".to_owned()];
        assert_eq!(queries(&one), ["CREATE ROLE a", "GRANT x TO a", "SELECT 1"]);
        let block = "DO $$ BEGIN CREATE ROLE a; GRANT x TO a; END $$;".to_owned();
        assert_eq!(queries(std::slice::from_ref(&block)), [block.trim()]);
        let quoted = vec!["COMMENT ON ROLE a IS 'END'; SELECT 2".to_owned()];
        assert_eq!(queries(&quoted).len(), 2, "END inside quotes is not a block");
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
    }

    #[test]
    fn devserver_db_expiration_uses_vaults_layout() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(expiration(t), "2023-11-14 22:13:20+0000");
    }

    #[test]
    fn devserver_db_redaction_hides_plain_and_encoded_secrets() {
        let text = "password authentication failed for Ab-cd/ef (Ab-cd%2Fef)";
        assert_eq!(redact(text, &["Ab-cd/ef", "xy"]), "password authentication failed for [password] ([password])");
    }
}
