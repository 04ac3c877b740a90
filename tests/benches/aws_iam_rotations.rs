//! IAM access-key rotations per second, end to end: the
//! `aws-iam-access-key` built-in in handle mode (every request through the
//! host's `http` import, signed by the host with the user's own key; the new
//! secret key captured by the host) against moto with authentication on and
//! the dev server, beside a native floor: the same IAM, STS and Vault calls
//! made directly by the moto fixture, with no plugin, no staging and no
//! state record.
//!
//! `cargo bench -p rotator-tests --bench aws_iam_rotations [-- --rotations N]`

use std::time::Instant;

use rotator_core::secret::SecretJson;
use rotator_tests::bench::{concurrent, figures, print_table, rotations_arg, sequential};
use rotator_tests::moto::{AwsKey, Moto, REGION, SELF_SERVICE_POLICY, xml_field};
use rotator_tests::{dev_server, jobs, store};

/// How many users (jobs) rotate at once in the concurrent phase.
const JOBS: usize = 4;

/// An IAM call of the native floor, which must succeed.
async fn iam(moto: &Moto, key: &AwsKey, form: &[(&str, &str)]) -> String {
    moto.call(key, "iam", REGION, form).await.expect("IAM call")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rotations = rotations_arg(200);
    let server = dev_server().await;
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let mut toml = String::new();
    let mut keys = Vec::new();
    for n in 0..JOBS {
        let user = format!("bench_{n}");
        keys.push((n, moto.create_user(&user, SELF_SERVICE_POLICY).await));
        toml.push_str(&moto.access_key_job(&format!("iam-{n}"), &format!("bench/iam-{n}"), &user));
    }
    let (vault, jobs, _runtime) = jobs(&server, &toml);
    for (n, key) in &keys {
        let secret = SecretJson::new(Moto::secret_of(key).to_string());
        vault.kv_write("secret", &format!("bench/iam-{n}"), &secret, None).await.unwrap();
    }
    let store = store(&vault);

    let sequential = sequential(&jobs[0], &store, rotations).await;
    let concurrent = concurrent(&jobs, &store, rotations).await;

    // The native floor: what a rotation must at least send.
    let user = "bench_native";
    let mut current = moto.create_user(user, SELF_SERVICE_POLICY).await;
    let mut previous: Option<String> = None;
    let mut times = Vec::with_capacity(rotations);
    let started = Instant::now();
    for _ in 0..rotations {
        let t = Instant::now();
        iam(&moto, &current, &[("Action", "ListAccessKeys"), ("UserName", user)]).await;
        if let Some(old) = previous.take() {
            iam(&moto, &current, &[("Action", "DeleteAccessKey"), ("UserName", user), ("AccessKeyId", &old)]).await;
        }
        let created = iam(&moto, &current, &[("Action", "CreateAccessKey"), ("UserName", user)]).await;
        let new = AwsKey {
            id: xml_field(&created, "AccessKeyId").unwrap(),
            secret: xml_field(&created, "SecretAccessKey").unwrap(),
        };
        moto.caller_identity(&new).await.expect("the new key works");
        let deactivate = [
            ("Action", "UpdateAccessKey"),
            ("UserName", user),
            ("AccessKeyId", current.id.as_str()),
            ("Status", "Inactive"),
        ];
        iam(&moto, &new, &deactivate).await;
        let secret = SecretJson::new(Moto::secret_of(&new).to_string());
        vault.kv_write("secret", "bench/native", &secret, None).await.unwrap();
        previous = Some(std::mem::replace(&mut current, new).id);
        times.push(t.elapsed());
    }
    let native = figures(times, started.elapsed());

    println!("{rotations} rotations each; moto {} on loopback (auth on), dev server on loopback", moto.endpoint);
    print_table(&[
        ("rotator, one job (sequential)", &sequential),
        (&format!("rotator, {JOBS} jobs at once"), &concurrent),
        ("native floor (fixture IAM/STS + Vault calls, sequential)", &native),
    ]);
}
