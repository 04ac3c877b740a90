//! The dev server's request size limit, over raw keep-alive connections:
//! Vault's default `max_request_size` (32 MiB), Vault's error body for a
//! larger write, and the same connection usable for the next request.

use rotator_devserver::{DRAIN_LIMIT, MAX_REQUEST_SIZE};
use rotator_tests::raw_http::{RawConnection, chunk, head};
use rotator_tests::{ROOT, dev_server};
use serde_json::json;

/// What Vault answers for a body over `max_request_size`.
fn vault_too_large() -> serde_json::Value {
    json!({ "errors": ["failed to parse JSON input: http: request body too large"] })
}

/// A KV v2 write whose JSON body is exactly `size` bytes.
fn kv_write_body(size: u64) -> Vec<u8> {
    let (open, close) = (br#"{"data":{"blob":""#.as_slice(), br#""}}"#.as_slice());
    let filler = size as usize - open.len() - close.len();
    [open, &vec![b'a'; filler], close].concat()
}

fn write_head(length: u64) -> Vec<u8> {
    let token = format!("X-Vault-Token: {ROOT}");
    head("POST", "/v1/secret/data/big", &[&token, &format!("Content-Length: {length}")])
}

async fn health(conn: &mut RawConnection) {
    conn.send(&head("GET", "/v1/sys/health", &[])).await.unwrap();
    let answer = conn.response().await;
    assert_eq!(answer.status, 200, "the connection still carries requests");
    assert_eq!(answer.json()["initialized"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_at_the_limit_is_written_one_byte_more_is_refused_as_vault_does_and_the_connection_lives() {
    let server = dev_server().await;
    let mut conn = RawConnection::open(&server.addr().to_string()).await;

    // Exactly 32 MiB: accepted and stored.
    conn.send(&[write_head(MAX_REQUEST_SIZE), kv_write_body(MAX_REQUEST_SIZE)].concat()).await.unwrap();
    let written = conn.response().await;
    assert_eq!(written.status, 200, "{}", String::from_utf8_lossy(&written.body));
    assert_eq!(written.json()["data"]["version"], 1);

    // One byte more: 413 with Vault's body, and the next request on the
    // same connection is answered.
    conn.send(&[write_head(MAX_REQUEST_SIZE + 1), kv_write_body(MAX_REQUEST_SIZE + 1)].concat()).await.unwrap();
    let refused = conn.response().await;
    assert_eq!(refused.status, 413);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.json(), vault_too_large());
    assert_eq!(refused.header("connection"), None, "the connection is kept");
    health(&mut conn).await;

    // Chunked, no length declared: the same answer once the body passes
    // the limit, and the connection still lives.
    let token = format!("X-Vault-Token: {ROOT}");
    let mut body = head("POST", "/v1/secret/data/big", &[&token, "Transfer-Encoding: chunked"]);
    let piece = vec![b' '; 1 << 20];
    for _ in 0..33 {
        body.extend_from_slice(&chunk(&piece));
    }
    body.extend_from_slice(&chunk(b""));
    conn.send(&body).await.unwrap();
    let chunked = conn.response().await;
    assert_eq!((chunked.status, chunked.json()), (413, vault_too_large()));
    health(&mut conn).await;

    // The stored version is still the 32 MiB one.
    let read = rotator_tests::Dev { server, http: rotator_tests::http_client(std::time::Duration::from_secs(60)) };
    let (status, answer) = read.root("GET", "secret/metadata/big", None).await;
    assert_eq!((status, answer["data"]["current_version"].clone()), (200, json!(1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_ignore_their_body_and_a_huge_declared_body_is_refused_at_once() {
    let server = dev_server().await;
    let addr = server.addr().to_string();

    // Vault reads no body for a read: an oversized one does not fail it.
    let mut conn = RawConnection::open(&addr).await;
    let length = MAX_REQUEST_SIZE + 10;
    let token = format!("X-Vault-Token: {ROOT}");
    let mut request = head("GET", "/v1/sys/mounts", &[&token, &format!("Content-Length: {length}")]);
    request.extend_from_slice(&vec![b'x'; length as usize]);
    conn.send(&request).await.unwrap();
    assert_eq!(conn.response().await.status, 200);
    health(&mut conn).await;

    // A declared body beyond what is worth draining: refused before any of
    // it is sent, and the connection is closed instead of read for ever.
    let mut conn = RawConnection::open(&addr).await;
    conn.send(&write_head(DRAIN_LIMIT + 1)).await.unwrap();
    let refused = conn.response().await;
    assert_eq!((refused.status, refused.json()), (413, vault_too_large()));
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(conn.closed_by_server().await);
}
