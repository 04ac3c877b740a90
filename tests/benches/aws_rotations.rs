//! Rotations per second with the secret in AWS Secrets Manager (moto's
//! server mode on loopback, request authentication on) and the state record
//! in the dev server: a kv-random job, one rotation after another and eight
//! jobs at once, beside a native floor: the Secrets Manager calls a rotation
//! makes (read, put AWSPENDING, move AWSCURRENT, take AWSPENDING off) sent
//! directly, with no plugin, no state record and no checks.
//!
//! `cargo test -p rotator-tests --bench aws_rotations -- --rotations N` (the
//! test profile, as the other end-to-end benches: see docs/benchmarks.md)

use std::time::{Duration, Instant};

use rotator_core::aws::{AwsClient, AwsEnv, Credentials, CredentialsProvider, Service};
use rotator_core::vault::RequestRetry;
use rotator_tests::moto::Moto;
use rotator_tests::{bench, dev_server, jobs, store};
use serde_json::{Value, json};

const JOBS: usize = 8;
const REGION: &str = "eu-west-1";

async fn call(aws: &AwsClient, op: &str, body: Value) -> Value {
    aws.json(Service::SECRETS_MANAGER, REGION, op, &body).await.unwrap_or_else(|e| panic!("{op}: {e}"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rotations = bench::rotations_arg(200);
    let moto = Moto::shared();
    let env = AwsEnv::from_pairs([("AWS_ENDPOINT_URL".to_owned(), moto.endpoint.clone())]);
    let credentials = CredentialsProvider::fixed(Credentials {
        access_key_id: moto.admin.id.clone(),
        secret_access_key: moto.admin.secret.clone().into(),
        session_token: None,
        expires: None,
        source: "bench".into(),
    });
    let aws = AwsClient::new(env, credentials, Duration::from_secs(10), RequestRetry::default()).unwrap();
    let server = dev_server().await;
    let run = uuid::Uuid::new_v4();
    let mut toml = String::new();
    for n in 0..=JOBS {
        let name = format!("bench/{run}/{n}");
        call(&aws, "CreateSecret", json!({ "Name": name, "SecretString": json!({"password": "initial"}).to_string() }))
            .await;
        toml.push_str(&format!(
            "[[jobs]]\nid = \"aws-{n}\"\nplugin = \"kv-random\"\nsecret = {{ aws = {{ id = \"{name}\", region = \"{REGION}\" }} }}\n\
             interval = \"1h\"\nsettings = {{ field = \"password\" }}\n"
        ));
    }
    let (vault, jobs, _runtime) = jobs(&server, &toml);
    let store = store(&vault).with_aws(aws.clone());

    let sequential = bench::sequential(&jobs[0], &store, rotations).await;
    let concurrent = bench::concurrent(&jobs[1..], &store, rotations).await;

    // The native floor, on a secret of its own.
    let name = format!("bench/{run}/native");
    call(&aws, "CreateSecret", json!({ "Name": name, "SecretString": "{}" })).await;
    let mut times = Vec::with_capacity(rotations);
    let started = Instant::now();
    for i in 0..rotations {
        let t = Instant::now();
        let current = call(&aws, "GetSecretValue", json!({ "SecretId": name, "VersionStage": "AWSCURRENT" })).await;
        let base = current["VersionId"].as_str().unwrap().to_owned();
        let token = uuid::Uuid::new_v4().to_string();
        let value = json!({ "password": format!("native-{i}-{token}") }).to_string();
        let put = json!({ "SecretId": name, "ClientRequestToken": token, "SecretString": value, "VersionStages": ["AWSPENDING"] });
        call(&aws, "PutSecretValue", put).await;
        let promote = json!({ "SecretId": name, "VersionStage": "AWSCURRENT", "MoveToVersionId": token, "RemoveFromVersionId": base });
        call(&aws, "UpdateSecretVersionStage", promote).await;
        let unstage = json!({ "SecretId": name, "VersionStage": "AWSPENDING", "RemoveFromVersionId": token });
        call(&aws, "UpdateSecretVersionStage", unstage).await;
        times.push(t.elapsed());
    }
    let native = bench::figures(times, started.elapsed());

    println!("{rotations} rotations each; moto {} on loopback, dev server on loopback", moto.endpoint);
    bench::print_table(&[
        ("rotator, one job (sequential)", &sequential),
        ("rotator, 8 jobs at once", &concurrent),
        ("native floor (4 Secrets Manager calls, sequential)", &native),
    ]);
}
