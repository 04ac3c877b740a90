//! The client's retries against the dev server's fault injection: transient
//! answers (503 sealed, 429, 500) are retried with backoff until they clear;
//! other 4xx are final at once; a delay beyond the timeout is a timeout.

use std::time::{Duration, Instant};

use rotator_core::secret::SecretJson;
use rotator_core::vault::{RequestRetry, VaultClient, VaultError, VaultOptions};
use rotator_devserver::{DevServer, FaultRules};
use rotator_tests::{ROOT, dev_server};
use secrecy::SecretString;

fn client(server: &DevServer, retry: RequestRetry, timeout: Duration) -> VaultClient {
    let options = VaultOptions { retry, timeout, ..VaultOptions::new(server.url(), SecretString::from(ROOT)) };
    VaultClient::new(options).unwrap()
}

fn faults(statuses: &[u16], remaining: u32) -> FaultRules {
    FaultRules {
        rate: 1.0,
        statuses: statuses.to_vec(),
        path_prefix: Some("secret/".into()),
        remaining: Some(remaining),
        ..FaultRules::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_answers_are_retried_until_they_clear() {
    let server = dev_server().await;
    let quick = RequestRetry { attempts: 4, base: Duration::from_millis(20), max: Duration::from_millis(200) };
    let c = client(&server, quick, Duration::from_secs(5));
    c.kv_write("secret", "r/x", &SecretJson::new(r#"{"a":"b"}"#.into()), Some(0)).await.unwrap();
    for status in [503, 429, 500] {
        let before = server.stats().requests("secret/data/r/x");
        server.set_faults(Some(faults(&[status], 3)));
        let read = c.kv_read("secret", "r/x").await.unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(read.unwrap().version, Some(1));
        assert_eq!(server.stats().requests("secret/data/r/x") - before, 4, "three faults, then success ({status})");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_stop_at_the_limit_and_client_errors_are_not_retried() {
    let server = dev_server().await;
    let quick = RequestRetry { attempts: 3, base: Duration::from_millis(10), max: Duration::from_millis(50) };
    let c = client(&server, quick, Duration::from_secs(5));
    server.set_faults(Some(faults(&[503], 10)));
    let err = c.kv_read("secret", "r/y").await.unwrap_err();
    assert!(matches!(err, VaultError::Status { status: 503, .. }), "{err}");
    assert!(err.to_string().contains("Vault is sealed"), "{err}");
    assert_eq!(server.stats().requests("secret/data/r/y"), 3);

    server.set_faults(None);
    let bad = c.request("POST", "secret/data/r/z", Some("not json".into())).await.unwrap_err();
    assert_eq!(bad.status(), Some(400));
    assert_eq!(server.stats().requests("secret/data/r/z"), 1, "a 400 is final");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_vault_times_out_and_the_retry_succeeds() {
    let server = dev_server().await;
    let c = client(
        &server,
        RequestRetry { attempts: 2, base: Duration::from_millis(10), max: Duration::from_millis(10) },
        Duration::from_millis(300),
    );
    server.set_faults(Some(FaultRules { delay: Some(Duration::from_secs(2)), ..faults(&[], 1) }));
    let started = Instant::now();
    assert!(c.kv_read("secret", "r/slow").await.unwrap().is_none());
    assert!(started.elapsed() < Duration::from_secs(2), "did not time out: {:?}", started.elapsed());
}
