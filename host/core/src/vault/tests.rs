//! The client's request counter against a running dev server: every HTTP
//! answer is counted by status, and every try that got no answer as `error`.

use std::time::Duration;

use secrecy::SecretString;

use super::{RequestRetry, VaultClient, VaultError, VaultOptions};
use crate::metrics::Metrics;
use rotator_devserver::{DevServer, DevServerOptions};

const ROOT: &str = "metrics-test-root";

fn client(address: &str, token: &str) -> VaultClient {
    VaultClient::new(VaultOptions::new(address, SecretString::from(token.to_owned()))).unwrap()
}

/// The `rotator_vault_requests_total` lines of a render.
fn vault_lines(metrics: &Metrics) -> Vec<String> {
    metrics.render().lines().filter(|l| l.starts_with("rotator_vault_requests_total{")).map(str::to_owned).collect()
}

#[tokio::test]
async fn every_answer_and_every_failed_try_is_counted_by_status() {
    let options =
        DevServerOptions { addr: "127.0.0.1:0".parse().unwrap(), root_token: ROOT.into(), ..Default::default() };
    let server = DevServer::start(options).await.unwrap();
    let metrics = Metrics::new();
    let vault = client(&server.url(), ROOT).with_metrics(metrics.clone());
    let stranger = client(&server.url(), "not-a-token").with_metrics(metrics.clone());

    vault.health().await.unwrap();
    vault.request("POST", "secret/data/app", Some(r#"{"data":{"k":"v"}}"#.into())).await.unwrap();
    let missing = vault.request("GET", "secret/data/nothing-here", None).await.unwrap_err();
    assert!(matches!(missing, VaultError::Status { status: 404, .. }), "{missing}");
    let denied = stranger.request("GET", "secret/data/app", None).await.unwrap_err();
    assert!(matches!(denied, VaultError::Status { status: 403, .. }), "{denied}");

    // Nothing listens here any more: both tries of a two-try policy fail.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let retry = RequestRetry { attempts: 2, base: Duration::ZERO, max: Duration::ZERO };
    let unreachable = client(&gone, ROOT).with_metrics(metrics.clone());
    let err = unreachable.request_with("GET", "sys/health", None, true, retry).await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable { .. }), "{err}");

    assert_eq!(
        vault_lines(&metrics),
        [
            r#"rotator_vault_requests_total{status="200"} 2"#,
            r#"rotator_vault_requests_total{status="403"} 1"#,
            r#"rotator_vault_requests_total{status="404"} 1"#,
            r#"rotator_vault_requests_total{status="error"} 2"#,
        ]
    );
    // A client without metrics counts nothing (and behaves the same).
    client(&server.url(), ROOT).health().await.unwrap();
    assert_eq!(vault_lines(&metrics)[0], r#"rotator_vault_requests_total{status="200"} 2"#);
    server.shutdown().await;
}
