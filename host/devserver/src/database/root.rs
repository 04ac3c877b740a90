//! `POST <mount>/rotate-root/:name`: a root password only the server knows.
//!
//! As Vault's `pathRotateRootCredentialsUpdate`: the connection must exist
//! and name a username and a password (else Vault's plain errors, 500); a
//! new password under the default policy is set with the config's
//! `root_rotation_statements` (default `ALTER ROLE "{{username}}" WITH
//! PASSWORD '{{password}}'`) run as the root user, and kept in the
//! connection, never returned. The connection's write gate holds every other
//! operation on it off meanwhile ([`Connection::rotate_root`]); afterwards the
//! old password is refused by PostgreSQL and the engine works on with the
//! new one. The answer is 204.

use super::connection::Connection;
use super::{engine, generate, internal};
use crate::response::Reply;
use crate::{Handled, State};

/// `POST rotate-root/:name`.
pub(super) fn rotate(state: &mut State, mount: &str, name: &str) -> Handled {
    let Some(db) = engine(state, mount) else {
        return Reply::unsupported_path().into();
    };
    let statements = match db.config_for(name) {
        Ok(config) => config.root_rotation_statements.clone(),
        Err(reply) => return reply.into(),
    };
    let connection = db.connection(name);
    let (mount, name) = (mount.to_owned(), name.to_owned());
    Handled::Later(Box::pin(async move { answer(&connection, &statements, &mount, &name).await }))
}

/// Rotate, and answer 204 or Vault's plain error.
async fn answer(connection: &Connection, statements: &[String], mount: &str, name: &str) -> Reply {
    match connection.rotate_root(statements, generate::password()).await {
        Ok(()) => {
            tracing::info!(mount, connection = name, "vault dev server: database root credentials rotated");
            Reply::NoContent
        }
        Err(e) => {
            tracing::warn!(mount, connection = name, error = %e, "vault dev server: database root rotation failed");
            internal(e)
        }
    }
}
