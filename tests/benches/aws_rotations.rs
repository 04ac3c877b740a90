//! Rotations per second with the secret in AWS Secrets Manager (moto's
//! server mode on loopback, request authentication on) and the state record
//! in the dev server: a kv-random job, one rotation after another and eight
//! jobs at once, beside a native floor: the Secrets Manager calls a rotation
//! makes (read, put AWSPENDING, move AWSCURRENT, take AWSPENDING off) sent
//! directly, with no plugin, no state record and no checks.
//!
//! `cargo bench -p rotator-tests --bench aws_rotations [-- --rotations N]`

use std::time::{Duration, Instant};

use rotator_core::aws::{AwsClient, AwsEnv, Credentials, CredentialsProvider, Service};
use rotator_core::vault::RequestRetry;
use rotator_tests::moto::Moto;
use rotator_tests::{dev_server, jobs, store};
use serde_json::{Value, json};

const JOBS: usize = 8;
const REGION: &str = "eu-west-1";

struct Figures {
    median: Duration,
    p99: Duration,
    per_second: f64,
}

fn figures(mut times: Vec<Duration>, wall: Duration) -> Figures {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Figures { median: at(0.5), p99: at(0.99), per_second: times.len() as f64 / wall.as_secs_f64() }
}

async fn call(aws: &AwsClient, op: &str, body: Value) -> Value {
    aws.json(Service::SECRETS_MANAGER, REGION, op, &body).await.unwrap_or_else(|e| panic!("{op}: {e}"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rotations: usize = args
        .iter()
        .position(|a| a == "--rotations")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
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

    jobs[0].rotate(&store, "bench").await.expect("warm-up rotation");
    let mut times = Vec::with_capacity(rotations);
    let started = Instant::now();
    for _ in 0..rotations {
        let t = Instant::now();
        jobs[0].rotate(&store, "bench").await.expect("rotation");
        times.push(t.elapsed());
    }
    let sequential = figures(times, started.elapsed());

    let started = Instant::now();
    let per_job = rotations.div_ceil(JOBS);
    let runs = jobs[1..].iter().map(|job| {
        let store = store.clone();
        async move {
            let mut times = Vec::with_capacity(per_job);
            for _ in 0..per_job {
                let t = Instant::now();
                job.rotate(&store, "bench").await.expect("rotation");
                times.push(t.elapsed());
            }
            times
        }
    });
    let times: Vec<Duration> = futures_util::future::join_all(runs).await.into_iter().flatten().collect();
    let concurrent = figures(times, started.elapsed());

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
    let native = figures(times, started.elapsed());

    println!("{rotations} rotations each; moto {} on loopback, dev server on loopback", moto.endpoint);
    println!("| run | median | p99 | rotations/s |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, f) in [
        ("rotator, one job (sequential)", &sequential),
        ("rotator, 8 jobs at once", &concurrent),
        ("native floor (4 Secrets Manager calls, sequential)", &native),
    ] {
        println!("| {name} | {:.1} ms | {:.1} ms | {:.1} |", ms(f.median), ms(f.p99), f.per_second);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
