//! `<mount>/creds/:role`: dynamic credentials, and how their lease ends.
//!
//! Issuing follows Vault's `pathCredsCreateRead`: the role must exist (400
//! "unknown role: x"), its connection must exist and allow it (500, Vault's
//! plain errors), the TTL is the role's `default_ttl` (else the mount's),
//! capped by the role's `max_ttl` (else the mount's); the username follows
//! the plugin's default template, the password Vault's default policy, and
//! `{{expiration}}` is the TTL plus Vault's 5 s buffer. The creation
//! statements run in one transaction as the root user, outside the state
//! lock; only then is the lease recorded (path `<mount>creds/<role>`) and
//! the answer built: `lease_id`, `lease_duration`, `renewable: true`, and
//! `data: {username, password}`.
//!
//! The lease's [`CredsBackend`] ends the user the way Vault does: revoking
//! runs the role's current `revocation_statements` (those of the role when
//! the credential was issued if the role is gone), or by default drops the
//! user ([`super::sql::drop_role`]); renewing runs `renew_statements`
//! (default `ALTER ROLE ... VALID UNTIL`), so PostgreSQL's own expiry
//! follows the lease. The expiry task therefore drops expired users.

use std::sync::{Arc, Weak};

use axum::http::StatusCode;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::connection::Connection;
use super::roles::Role;
use super::{engine, generate, internal, not_allowed, sql};
use crate::leases::{LeaseBackend, LeaseView, NewLease};
use crate::response::{Envelope, LeaseInfo, Reply};
use crate::{BoxFuture, Handled, Request, Shared, State};

/// Vault's buffer between the lease's end and PostgreSQL's `VALID UNTIL`.
const EXPIRATION_BUFFER: i64 = 5;

/// The PostgreSQL plugin's default renew statement.
const DEFAULT_RENEW: &str = r#"ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';"#;

/// `GET creds/:name`.
pub(super) fn issue(shared: &Arc<Shared>, state: &mut State, mount: &str, name: &str, req: &Request) -> Handled {
    let display_name =
        state.tokens.get(&req.client_token, req.now).map(|t| t.settings.display_name.clone()).unwrap_or_default();
    let Some(entry) = state.mounts.get(mount) else {
        return Reply::unsupported_path().into();
    };
    let (mount_default, mount_max) = (entry.effective_default_lease_ttl(), entry.effective_max_lease_ttl());
    let Some(db) = engine(state, mount) else {
        return Reply::unsupported_path().into();
    };
    let Some(role) = db.roles.get(name).cloned() else {
        return Reply::bad_request(format!("unknown role: {name}")).into();
    };
    match db.config_for(&role.db_name) {
        Err(reply) => return reply.into(),
        Ok(config) if !config.allows(name) => return not_allowed(name).into(),
        Ok(_) => {}
    }
    if role.creation_statements.is_empty() {
        return internal("empty creation statements").into();
    }
    let max_ttl = if role.max_ttl == 0 { mount_max } else { role.max_ttl.min(mount_max) };
    let ttl = if role.default_ttl == 0 { mount_default } else { role.default_ttl }.min(max_ttl);
    let connection = db.connection(&role.db_name);
    let username = generate::username(&display_name, name, req.now.unix_timestamp());
    let password = generate::password();
    let expiration = sql::expiration(req.now + Duration::seconds(ttl as i64 + EXPIRATION_BUFFER));
    let backend = CredsBackend {
        connection: Arc::clone(&connection),
        shared: Arc::downgrade(shared),
        mount: mount.to_owned(),
        role: name.to_owned(),
        username: username.clone(),
        revocation_statements: role.revocation_statements.clone(),
    };
    let lease = NewLease {
        path: req.path.clone(),
        ttl,
        max_ttl,
        renewable: true,
        token_accessor: Some(req.token_accessor.clone()).filter(|a| !a.is_empty()),
        data: json!({ "username": username, "role": name, "db_name": role.db_name }),
        backend: Arc::new(backend.clone()),
    };
    let shared = Arc::clone(shared);
    Handled::Later(Box::pin(async move {
        let statements = &role.creation_statements;
        if let Err(e) = create_user(&connection, &username, &password, &expiration, statements).await {
            tracing::warn!(mount = %backend.mount, role = %backend.role, error = %e, "vault dev server: database credentials not created");
            return internal(e);
        }
        let recorded = {
            let mut state = shared.lock();
            match engine(&mut state, &backend.mount) {
                None => None,
                Some(_) => {
                    let lease = state.create_lease(lease, OffsetDateTime::now_utc());
                    Some((lease.id.clone(), lease.ttl))
                }
            }
        };
        let Some((lease_id, lease_duration)) = recorded else {
            // The mount went away meanwhile: do not leave the user behind.
            let _ = backend.revoke_now().await;
            return Reply::unsupported_path();
        };
        tracing::info!(mount = %backend.mount, role = %backend.role, "vault dev server: database credentials issued");
        let mut envelope = Envelope::data(json!({ "username": username, "password": password.as_str() }));
        envelope.lease = Some(Box::new(LeaseInfo { id: lease_id, renewable: true }));
        envelope.lease_duration = lease_duration;
        Reply::Envelope(StatusCode::OK, envelope)
    }))
}

/// Run the creation statements for a new user, as the root user, in one
/// transaction.
async fn create_user(
    connection: &Connection,
    username: &str,
    password: &str,
    expiration: &str,
    statements: &[String],
) -> Result<(), String> {
    let mut session = connection.open().await?;
    let in_sql = session.settings.password_for_sql(password);
    let vars = [("name", username), ("username", username), ("password", in_sql.as_str()), ("expiration", expiration)];
    let secrets = [password, in_sql.as_str(), session.settings.secret()];
    sql::run_in_transaction(&mut session.client, statements, &vars, &secrets).await
}

/// How a dynamic credential's lease revokes and renews its user.
#[derive(Clone)]
pub(crate) struct CredsBackend {
    connection: Arc<Connection>,
    /// To read the role's current statements (weak: the lease table that
    /// holds this backend lives inside `Shared`).
    shared: Weak<Shared>,
    mount: String,
    role: String,
    username: String,
    /// The role's revocation statements when the user was created.
    revocation_statements: Vec<String>,
}

impl CredsBackend {
    /// The role as it is now, if its mount and the role still exist.
    fn current_role(&self) -> Option<Role> {
        let shared = self.shared.upgrade()?;
        let mut state = shared.lock();
        engine(&mut state, &self.mount)?.roles.get(&self.role).cloned()
    }

    /// Drop the user now.
    async fn revoke_now(&self) -> Result<(), String> {
        let statements =
            self.current_role().map_or_else(|| self.revocation_statements.clone(), |r| r.revocation_statements);
        let mut session = self.connection.open().await?;
        let user = self.username.as_str();
        let result = if statements.is_empty() {
            sql::drop_role(&session.client, user).await
        } else {
            let vars = [("name", user), ("username", user)];
            sql::run_in_transaction(&mut session.client, &statements, &vars, &[session.settings.secret()]).await
        };
        if result.is_ok() {
            tracing::info!(mount = %self.mount, role = %self.role, "vault dev server: database credentials revoked");
        }
        result
    }

    /// Move the user's `VALID UNTIL` to `ttl` seconds (plus the buffer)
    /// from now.
    async fn renew_now(&self, ttl: u64) -> Result<(), String> {
        let role = self
            .current_role()
            .ok_or_else(|| format!("error during renew: could not find role with name {:?}", self.role))?;
        if ttl == 0 {
            return Ok(());
        }
        let expiration = sql::expiration(OffsetDateTime::now_utc() + Duration::seconds(ttl as i64 + EXPIRATION_BUFFER));
        let default = [DEFAULT_RENEW.to_owned()];
        let statements = if role.renew_statements.is_empty() { &default[..] } else { &role.renew_statements[..] };
        let mut session = self.connection.open().await?;
        let user = self.username.as_str();
        let vars = [("name", user), ("username", user), ("expiration", expiration.as_str())];
        sql::run_in_transaction(&mut session.client, statements, &vars, &[session.settings.secret()]).await
    }
}

impl LeaseBackend for CredsBackend {
    /// Drop the user (or run the role's revocation statements).
    fn revoke(&self, _lease: LeaseView) -> BoxFuture<Result<(), String>> {
        let this = self.clone();
        Box::pin(async move { this.revoke_now().await })
    }

    /// Move the user's `VALID UNTIL` with the lease.
    fn renew(&self, _lease: LeaseView, ttl: u64) -> BoxFuture<Result<(), String>> {
        let this = self.clone();
        Box::pin(async move { this.renew_now(ttl).await })
    }
}
