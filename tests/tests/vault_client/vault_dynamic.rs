//! The lease manager in real time against the dev server's database engine
//! and a real PostgreSQL: a dynamic credential with a 3 s TTL and a 6 s max
//! TTL is renewed, its capped renewal is noticed, fresh credentials are
//! fetched before the old ones expire, and both credentials work until the
//! old lease runs out. At shutdown, every tracked lease can be revoked:
//! Vault forgets it and the database drops its user.

use std::sync::Arc;
use std::time::Duration;

use rotator_core::vault::leases::{DynamicSecret, LeaseEvent, LeaseManager};
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{ROOT, dev_server};
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::watch;

/// Mount the database engine at `db/` on `pg`, with one role per
/// `(name, default_ttl, max_ttl)`.
async fn database(vault: &VaultClient, pg: &Postgres, roles: &[(&str, &str, &str)]) {
    let mut setup = vec![
        ("sys/mounts/db".to_owned(), json!({"type": "database"})),
        ("db/config/pg".to_owned(), pg.vault_config("postgres", SUPERUSER_PASSWORD, json!("*"))),
    ];
    for (name, ttl, max_ttl) in roles {
        setup.push((
            format!("db/roles/{name}"),
            json!({
                "db_name": "pg",
                "creation_statements": r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#,
                "default_ttl": ttl,
                "max_ttl": max_ttl,
            }),
        ));
    }
    for (path, body) in setup {
        vault.request("POST", &path, Some(body.to_string())).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

fn field(s: &DynamicSecret, k: &str) -> String {
    s.data.fields()[k].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_credentials_are_renewed_then_refetched_before_the_max_ttl() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let server = dev_server().await;
    let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    database(&vault, &pg, &[("app", "3s", "6s")]).await;

    let manager = LeaseManager::new(Arc::new(vault.clone()), 20);
    let mut events = manager.subscribe();
    let first = manager.fetch("db/creds/app").await.unwrap();
    let (user1, pw1) = (field(&first, "username"), field(&first, "password"));
    assert!(pg.logs_in(&user1, &pw1).await);

    let (stop, rx) = watch::channel(false);
    let task = {
        let m = manager.clone();
        tokio::spawn(async move { m.run(rx).await })
    };
    tokio::time::sleep(Duration::from_millis(5900)).await;
    let current = manager.current("db/creds/app").unwrap();
    assert_ne!(current.lease_id, first.lease_id, "no fresh credentials before the max TTL");
    let (user2, pw2) = (field(&current, "username"), field(&current, "password"));
    assert!(pg.logs_in(&user2, &pw2).await, "the fresh credential works");

    // The old lease runs out at its 6 s max TTL; the engine drops its role.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!pg.logs_in(&user1, &pw1).await, "the old credential outlived its lease");
    stop.send(true).unwrap();
    task.await.unwrap();

    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(seen.iter().any(|e| matches!(e, LeaseEvent::Renewed { capped: false, .. })), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, LeaseEvent::Renewed { capped: true, .. })), "{seen:?}");
    assert!(
        seen.iter().any(|e| matches!(e, LeaseEvent::Refetched { old_lease_id, .. } if *old_lease_id == first.lease_id)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_at_shutdown_ends_every_tracked_credential() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let server = dev_server().await;
    let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    database(&vault, &pg, &[("app", "1h", "24h"), ("report", "1h", "24h")]).await;
    let manager = LeaseManager::new(Arc::new(vault.clone()), 20);
    let mut events = manager.subscribe();
    let mut issued = Vec::new();
    for role in ["app", "report"] {
        let s = manager.fetch(&format!("db/creds/{role}")).await.unwrap();
        assert!(pg.logs_in(&field(&s, "username"), &field(&s, "password")).await);
        issued.push(s);
    }

    // As the daemon does with `revoke_leases_on_shutdown`: stop renewing,
    // then revoke what is tracked.
    let (stop, rx) = watch::channel(false);
    let task = {
        let m = manager.clone();
        tokio::spawn(async move { m.run(rx).await })
    };
    stop.send(true).unwrap();
    task.await.unwrap();
    manager.revoke_all().await;

    assert!(manager.list().is_empty());
    let mut revoked = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let LeaseEvent::Revoked { lease_id, .. } = e {
            revoked.push(lease_id);
        }
    }
    revoked.sort();
    assert_eq!(revoked, issued.iter().map(|s| s.lease_id.clone()).collect::<Vec<_>>());
    for s in &issued {
        assert!(!pg.logs_in(&field(s, "username"), &field(s, "password")).await, "{} still logs in", s.path);
        let lookup = json!({ "lease_id": s.lease_id }).to_string();
        let gone = vault.request("PUT", "sys/leases/lookup", Some(lookup)).await.unwrap_err();
        assert_eq!(gone.status(), Some(400), "{gone}");
    }
}
