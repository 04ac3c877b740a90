//! The host's `sql` import against a real PostgreSQL, as a plugin sees it
//! (through the `fixture-sql-runner` component, whose `create` returns what
//! its statements gave back), and the literal substitution for utility
//! statements straight against the server.

use rotator_core::plugin::{SqlValue, substitute_parameters};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{dev_server, fixture, jobs};
use serde_json::{Value, json};

/// A connection `app` to `pg` (admin credentials in `secret/pg/admin`) and
/// one sql-runner job per `(id, settings)`, each granted `app`.
fn config(pg: &Postgres, runs: &[(&str, Value)]) -> String {
    let mut toml = format!(
        "[sql.connections.app]\nurl = \"postgres://127.0.0.1:{}/postgres\"\n\
         credentials = {{ vault = {{ path = \"pg/admin\" }} }}\n",
        pg.port
    );
    for (id, settings) in runs {
        let mut settings = settings.clone();
        settings["connection"] = json!("app");
        let inline = toml_inline(&settings);
        toml.push_str(&format!(
            "\n[[jobs]]\nid = \"{id}\"\nplugin = \"{}\"\nsecret = {{ path = \"runs/{id}\" }}\ninterval = \"1h\"\n\
             settings = {inline}\ngrants = [{{ sql = \"app\" }}]\n",
            fixture("fixture_sql_runner")
        ));
    }
    toml
}

fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let items: Vec<String> = map.iter().map(|(k, v)| format!("{k} = {}", toml_inline(v))).collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(toml_inline).collect::<Vec<_>>().join(", ")),
        Value::Null => panic!("TOML has no null"),
        // JSON numbers, booleans and strings are valid TOML as written.
        other => other.to_string(),
    }
}

async fn start() -> (Postgres, rotator_devserver::DevServer) {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let server = dev_server().await;
    (pg, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn bound_parameters_and_result_types_round_trip() {
    let (pg, server) = start().await;
    let runs = [
        (
            "types",
            json!({
                "execute": [
                    { "statement": "CREATE TABLE items (id int4, name name, price float8, ok bool, note text)" },
                    {
                        "statement": "INSERT INTO items VALUES ($1, $2, $3, $4, $5), ($6, 'b', 2.5, false, 'x')",
                        "params": [1, "a", 1.5, true, "it's $1 \\ x", 2],
                    },
                    { "statement": "UPDATE items SET ok = $1, note = NULL WHERE id = $2", "params": [true, 2] },
                ],
                "query": {
                    "statement": "SELECT id, name, price, ok, note, id::oid, 7::int2, 3::int8, 0.5::float4 \
                                  FROM items WHERE name = $1 OR id = $2 ORDER BY 1",
                    "params": ["a", 2],
                },
            }),
        ),
        ("show", json!({ "query": { "statement": "SHOW standard_conforming_strings" } })),
    ];
    let (vault, jobs, _rt) = jobs(&server, &config(&pg, &runs));
    let admin = json!({"username": "postgres", "password": SUPERUSER_PASSWORD}).to_string();
    vault.kv_write("secret", "pg/admin", &rotator_core::secret::SecretJson::new(admin), None).await.unwrap();

    for job in &jobs {
        job.rotate(&rotator_tests::store(&vault), "test").await.unwrap_or_else(|e| panic!("{e}"));
    }
    let result = |id: &'static str| {
        let vault = vault.clone();
        async move { Value::Object(vault.kv_read("secret", &format!("runs/{id}")).await.unwrap().unwrap().data.fields()) }
    };
    assert_eq!(
        result("types").await,
        json!({
            "counts": [0, 2, 1],
            "rows": [
                [1, "a", 1.5, true, "it's $1 \\ x", 1, 7, 3, 0.5],
                [2, "b", 2.5, true, null, 2, 7, 3, 0.5],
            ],
        })
    );
    assert_eq!(result("show").await, json!({"counts": [], "rows": [["on"]]}), "utility results come back as text");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_sqlstate_and_never_the_parameters() {
    let (pg, server) = start().await;
    let runs = [
        ("bad-int", json!({ "query": { "statement": "SELECT $1::int4", "params": ["not-a-number-but-secret"] } })),
        ("timestamp", json!({ "query": { "statement": "SELECT now() AS at" } })),
        ("missing-param", json!({ "execute": [{ "statement": "ALTER ROLE x PASSWORD $2", "params": ["pw-value"] }] })),
        (
            "two-statements",
            json!({ "execute": [{ "statement": "ALTER ROLE postgres PASSWORD $1; DROP ROLE x", "params": ["pw-value"] }] }),
        ),
    ];
    let (vault, jobs, _rt) = jobs(&server, &config(&pg, &runs));
    let admin = json!({"username": "postgres", "password": SUPERUSER_PASSWORD}).to_string();
    vault.kv_write("secret", "pg/admin", &rotator_core::secret::SecretJson::new(admin), None).await.unwrap();

    let mut errors = Vec::new();
    for job in &jobs {
        errors.push(job.rotate(&rotator_tests::store(&vault), "test").await.unwrap_err().to_string());
    }
    let expected = [
        r#"Failed("invalid input syntax for type integer: \"[REDACTED]\" (SQLSTATE 22P02)")"#,
        r#"Failed("column `at` has type timestamptz, which sql cannot return; cast it to text (`::text`) in the query")"#,
        r#"Failed("the statement uses $2 but 1 parameter(s) were given")"#,
        r#"Failed("a statement with substituted parameters must be a single statement")"#,
    ];
    for (err, want) in errors.iter().zip(expected) {
        assert!(err.contains(want), "{err}\nshould contain {want}");
        assert!(!err.contains("not-a-number-but-secret") && !err.contains("pw-value"), "{err}");
    }
    assert!(pg.logs_in("postgres", SUPERUSER_PASSWORD).await, "the refused batch changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn substituted_literals_cannot_escape_whatever_standard_conforming_strings_says() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin.batch_execute("CREATE ROLE victim LOGIN; CREATE ROLE canary").await.unwrap();
    let evil = [
        "it's-a-quote",
        r"back\slash\'; DROP ROLE canary; --",
        "'; DROP ROLE canary; --",
        "$1 $$ $a$ -- /* e'x' \" ",
        "ünïcödé-€-密码",
    ];
    for scs in ["on", "off"] {
        admin.batch_execute(&format!("SET standard_conforming_strings = {scs}")).await.unwrap();
        for pw in evil {
            let statement =
                substitute_parameters("ALTER ROLE victim PASSWORD $1", &[SqlValue::Text(pw.into())]).unwrap();
            admin.batch_execute(&statement).await.unwrap_or_else(|e| panic!("scs={scs}: {e}"));
            assert!(pg.logs_in("victim", pw).await, "scs={scs}: the password set is exactly the value given");
        }
    }
    let canary = admin.query("SELECT 1 FROM pg_roles WHERE rolname = 'canary'", &[]).await.unwrap();
    assert_eq!(canary.len(), 1, "no value ran as SQL");
}
