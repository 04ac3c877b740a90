//! Replays of database.json and leases.json, and of the lease errors of
//! errors.json, against the dev server's database engine and the shared
//! PostgreSQL cluster. The connection is named `mysql` because that is the
//! `db_name` the samples' requests send; it is a PostgreSQL connection, so
//! the samples' MySQL statements are replaced by PostgreSQL ones (the
//! role-read sample's own statements).

use rotator_core::vault::leases::LeaseApi;
use rotator_tests::ROOT;
use rotator_tests::contract::{self, Sample};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use serde_json::{Value, json};

use super::bench::{Bench, path, request};
use super::{Fut, fut};

const CONNECTION: &str = "mysql";
const ROLE: &str = "readonly";
const ROTATION: &str = r#"ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';"#;

/// The creation statements of database.json's role read (PostgreSQL).
fn creation_statements() -> Value {
    let entries = contract::entries("database.json");
    let read = entries.iter().find(|e| e["method"] == "GET" && e["path"] == "/v1/database/roles/:name").unwrap();
    read["response"]["data"]["creation_statements"].clone()
}

/// Run `sql` as the cluster's superuser.
async fn superuser(pg: &Postgres, sql: &str) {
    let client = pg.connect("postgres", SUPERUSER_PASSWORD).await.expect("superuser logs in");
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The engine at `database/` and its connection, as `user`/`password`.
async fn connection(b: &Bench<'_>, user: &str, password: &str) -> &'static str {
    let pg = b.shared.pg().await;
    b.setup("POST", "sys/mounts/database", json!({"type": "database"})).await;
    b.setup("POST", &format!("database/config/{CONNECTION}"), pg.vault_config(user, password, json!("*"))).await;
    CONNECTION
}

/// Connection and the dynamic role `readonly`; `max_ttl` in seconds.
async fn dynamic_role(b: &Bench<'_>, max_ttl: u64) {
    connection(b, "postgres", SUPERUSER_PASSWORD).await;
    let role = json!({"db_name": CONNECTION, "creation_statements": creation_statements(),
                      "default_ttl": 3600, "max_ttl": max_ttl});
    b.setup("POST", &format!("database/roles/{ROLE}"), role).await;
}

/// A fresh PostgreSQL login role for static-role samples.
async fn static_user(b: &Bench<'_>) -> String {
    let user = format!("static_user_{}", b.n);
    superuser(b.shared.pg().await, &format!("CREATE ROLE {user} LOGIN PASSWORD 'initial'")).await;
    user
}

/// Static role `:name` = `app` for `user`, from the sample's request (or
/// the documented period-based one).
async fn static_role(b: &Bench<'_>, user: &str, body: Option<Value>) {
    connection(b, "postgres", SUPERUSER_PASSWORD).await;
    let body = body.unwrap_or_else(|| json!({"db_name": CONNECTION, "rotation_period": "1h"}));
    let mut body = body;
    body["username"] = json!(user);
    body["rotation_statements"] = json!([ROTATION]);
    b.setup("POST", "database/static-roles/app", body).await;
}

/// The sample request with PostgreSQL in place of MySQL.
fn postgres_request(s: &Sample, pg: &Postgres) -> Value {
    request(
        s,
        json!({"plugin_name": "postgresql-database-plugin", "connection_url": pg.templated_url(),
               "username": "postgres", "password": SUPERUSER_PASSWORD}),
    )
}

pub fn config<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let pg = b.shared.pg().await;
        b.setup("POST", "sys/mounts/database", json!({"type": "database"})).await;
        let api = path(s, &[(":name", CONNECTION)]);
        if s.entry["method"] == "GET" {
            let mut body = postgres_request(s, pg);
            body["allowed_roles"] = json!([ROLE]);
            b.setup("POST", &api, body).await;
            return b.root("GET", &api, None).await;
        }
        let answer = b.root("POST", &api, Some(postgres_request(s, pg))).await;
        let read = b.root("GET", &api, None).await.body;
        let allowed = &read["data"]["allowed_roles"];
        b.check(*allowed == json!([s.request()["allowed_roles"]]), || format!("allowed_roles as a list: {read}"));
        answer
    })
}

/// `rotate-root/:name` for an admin of its own, whose old password then
/// fails.
pub fn rotate_root<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let pg = b.shared.pg().await;
        let admin = format!("vault_admin_{}", b.n);
        superuser(pg, &format!("CREATE ROLE {admin} SUPERUSER LOGIN PASSWORD 'first-password'")).await;
        connection(b, &admin, "first-password").await;
        let answer = b.root("POST", &path(s, &[(":name", CONNECTION)]), None).await;
        b.check(!pg.logs_in(&admin, "first-password").await, || "the old root password still works".into());
        answer
    })
}

pub fn roles<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        connection(b, "postgres", SUPERUSER_PASSWORD).await;
        let api = path(s, &[(":name", ROLE)]);
        let body = request(s, json!({"db_name": CONNECTION, "creation_statements": creation_statements()}));
        if s.entry["method"] == "GET" {
            b.setup(
                "POST",
                &api,
                json!({"db_name": CONNECTION, "creation_statements": creation_statements(),
                                         "default_ttl": "1h", "max_ttl": "24h"}),
            )
            .await;
            return b.root("GET", &api, None).await;
        }
        b.root("POST", &api, Some(body)).await
    })
}

pub fn creds<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        dynamic_role(b, 86400).await;
        let api = path(s, &[(":name", ROLE)]);
        let answer = b.root("GET", &api, None).await;
        let pg = b.shared.pg().await;
        let fetched = b.client(ROOT).fetch(&api).await.unwrap();
        let fields = fetched.data.fields();
        let (user, password) = (fields["username"].as_str().unwrap(), fields["password"].as_str().unwrap());
        b.check(pg.logs_in(user, password).await, || "client-fetched credentials log in".into());
        b.check(fetched.renewable && fetched.lease_duration.as_secs() == 3600, || format!("{fetched:?}"));
        answer
    })
}

/// static-roles/:name writes and reads, Vault's schedule variant included.
pub fn static_roles<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let user = static_user(b).await;
        let api = path(s, &[(":name", "app")]);
        if s.entry["method"] == "POST" {
            connection(b, "postgres", SUPERUSER_PASSWORD).await;
            let body = request(s, json!({"username": user, "rotation_statements": [ROTATION]}));
            let answer = b.root("POST", &api, Some(body)).await;
            let rotated = b.shared.pg().await.logs_in(&user, "initial").await;
            b.check(!rotated, || "creating a static role rotates its password".into());
            return answer;
        }
        let schedule = s.response()["data"].get("rotation_schedule").is_some();
        static_role(b, &user, schedule.then(schedule_request)).await;
        b.root("GET", &api, None).await
    })
}

/// The request of database.json's Vault schedule sample.
fn schedule_request() -> Value {
    let entries = contract::entries("database.json");
    let sample = entries.iter().find(|e| e["request"].get("rotation_schedule").is_some()).unwrap();
    let mut body = sample["request"].clone();
    body["db_name"] = json!(CONNECTION);
    body
}

pub fn static_creds<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let user = static_user(b).await;
        let schedule = s.response()["data"].get("rotation_schedule").is_some();
        static_role(b, &user, schedule.then(schedule_request)).await;
        let answer = b.root("GET", &path(s, &[(":name", "app")]), None).await;
        let password = answer.body["data"]["password"].as_str().unwrap_or_default().to_owned();
        b.check(b.shared.pg().await.logs_in(&user, &password).await, || "static creds log in".into());
        answer
    })
}

pub fn rotate_role<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let user = static_user(b).await;
        static_role(b, &user, None).await;
        let before = b.root("GET", "database/static-creds/app", None).await.body["data"]["password"].clone();
        let answer = b.root("POST", &path(s, &[(":name", "app")]), None).await;
        let after = b.root("GET", "database/static-creds/app", None).await.body["data"]["password"].clone();
        b.check(before != after, || "rotate-role changes the password".into());
        answer
    })
}

/// A lease of `database/creds/readonly`; max TTL in seconds.
async fn lease(b: &Bench<'_>, max_ttl: u64) -> String {
    dynamic_role(b, max_ttl).await;
    let creds = b.setup("GET", &format!("database/creds/{ROLE}"), Value::Null).await;
    creds["lease_id"].as_str().unwrap().to_owned()
}

/// leases.json: each call about a fresh database lease (the prefix samples
/// name its role's prefix).
pub fn leases<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let id = lease(b, 86400).await;
        let prefix = format!("database/creds/{ROLE}/");
        let api = path(s, &[(":prefix", &prefix)]);
        let method = s.entry["method"].as_str().unwrap();
        let body = (!s.request().is_null()).then(|| request(s, json!({"lease_id": id})));
        let answer = b.root(method, &api, body).await;
        let client = b.client(ROOT);
        match api.as_str() {
            "sys/leases/renew" => {
                let renewed = client.renew(&id, std::time::Duration::from_secs(1800)).await.unwrap();
                b.check(renewed.renewable && renewed.lease_duration.as_secs() == 1800, || format!("{renewed:?}"));
            }
            "sys/leases/lookup" | "sys/leases/lookup/database/creds/readonly/" => {}
            _ => {
                let gone = b.root("POST", "sys/leases/lookup", Some(json!({"lease_id": id}))).await;
                b.check(gone.status == 400, || format!("{api} leaves the lease: {}", gone.body));
                let other = lease_again(b).await;
                b.check(client.revoke(&other).await.is_ok(), || "client revoke".into());
            }
        }
        answer
    })
}

async fn lease_again(b: &Bench<'_>) -> String {
    let creds = b.setup("GET", &format!("database/creds/{ROLE}"), Value::Null).await;
    creds["lease_id"].as_str().unwrap().to_owned()
}

/// errors.json's lease errors: unknown, token and capped leases.
pub fn lease_error<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let api = path(s, &[]);
        let message = s.response()["errors"][0].as_str().unwrap_or_default();
        let id = match message {
            "lease not found" | "invalid lease" => "database/creds/readonly/no-such-lease".to_owned(),
            "tokens cannot be renewed through this endpoint" => "auth/token/create/abcdef".to_owned(),
            _ => lease(b, 3600).await,
        };
        let answer = b.root("POST", &api, Some(json!({"lease_id": id, "increment": 7200}))).await;
        if let Some(format) = s.entry["warning_format"].as_str() {
            let warning = answer.body["warnings"][0].as_str().unwrap_or_default();
            let (head, rest) = format.split_once("%q").unwrap();
            let (middle, tail) = rest.split_once("%q").unwrap();
            // Vault's human durations drop zero units: 2h, not 2h0m0s.
            let (prefix, suffix) = (format!("{head}\"2h\"{middle}\""), format!("\"{tail}"));
            b.check(warning.starts_with(&prefix) && warning.ends_with(&suffix), || {
                format!("capping warning: {}", answer.body)
            });
            b.check(answer.body["lease_duration"].as_u64().is_some_and(|d| d <= 3600), || "capped".into());
        }
        answer
    })
}
