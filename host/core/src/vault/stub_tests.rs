//! The client against answers the dev server never gives: what a proxy or
//! load balancer in front of Vault sends (a 502 with an HTML page) and a
//! rate limit that says how long to wait (`Retry-After`). A tiny axum stub on
//! 127.0.0.1 plays the part: it serves a script of answers, one per request,
//! and records when each request arrived.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use secrecy::SecretString;

use super::{MAX_RETRY_AFTER, RequestRetry, VaultClient, VaultError, VaultOptions, retry_delay};

/// One scripted answer: status, `Retry-After` (if any), body.
type Answer = (u16, Option<&'static str>, &'static str);

const BAD_GATEWAY_PAGE: &str = "<html><body><h1>502 Bad Gateway</h1></body></html>";

/// Serve `script` (the last answer repeats) and record every arrival.
async fn stub(script: Vec<Answer>) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let handler = move || {
        let (script, seen) = (script.clone(), seen.clone());
        async move {
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push(Instant::now());
                seen.len() - 1
            };
            let (status, retry_after, body) = script[n.min(script.len() - 1)];
            let mut headers = HeaderMap::new();
            if let Some(v) = retry_after {
                headers.insert("retry-after", HeaderValue::from_static(v));
            }
            (StatusCode::from_u16(status).unwrap(), headers, body)
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrivals)
}

fn client(url: &str, retry: RequestRetry) -> VaultClient {
    VaultClient::new(VaultOptions { retry, ..VaultOptions::new(url, SecretString::from("t".to_owned())) }).unwrap()
}

const QUICK: RequestRetry =
    RequestRetry { attempts: 3, base: Duration::from_millis(10), max: Duration::from_millis(20) };

#[tokio::test]
async fn a_proxy_502_with_an_html_page_is_retried_like_any_5xx() {
    let (url, arrivals) = stub(vec![(502, None, BAD_GATEWAY_PAGE), (200, None, r#"{"data":{"ok":true}}"#)]).await;
    let resp = client(&url, QUICK).request("GET", "secret/data/app", None).await.unwrap();
    assert_eq!(resp.body.unwrap()["data"]["ok"], true);
    assert_eq!(arrivals.lock().unwrap().len(), 2, "one 502, then the answer");
}

#[tokio::test]
async fn an_unparseable_error_page_becomes_a_typed_status_error_without_the_body() {
    let (url, arrivals) = stub(vec![(502, None, BAD_GATEWAY_PAGE)]).await;
    let err = client(&url, QUICK).request("GET", "secret/data/app", None).await.unwrap_err();
    match &err {
        VaultError::Status { status: 502, errors, .. } => assert!(errors.is_empty(), "{errors:?}"),
        other => panic!("expected a 502 status error, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(!err.to_string().contains("html"), "the page leaked into the error: {err}");
    assert_eq!(arrivals.lock().unwrap().len(), 3, "every try of the policy was used");

    // A 2xx that is not JSON is still a protocol error, and final.
    let (url, arrivals) = stub(vec![(200, None, "<html>hello</html>")]).await;
    let err = client(&url, QUICK).request("GET", "secret/data/app", None).await.unwrap_err();
    assert!(matches!(err, VaultError::Protocol { .. }), "{err}");
    assert_eq!(arrivals.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retry_after_on_a_429_is_waited_out() {
    // The policy alone would retry at once; Vault asks for one second.
    let instant = RequestRetry { attempts: 2, base: Duration::ZERO, max: Duration::ZERO };
    let limited = r#"{"errors":["request path \"secret/data/app\": rate limit quota exceeded"]}"#;
    let (url, arrivals) = stub(vec![(429, Some("1"), limited), (200, None, "{}")]).await;
    client(&url, instant).request("GET", "secret/data/app", None).await.unwrap();
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}, before Retry-After allowed");
}

#[test]
fn retry_after_raises_the_delay_up_to_a_cap_and_never_lowers_it() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let p = RequestRetry::default();
    assert_eq!(retry_delay(&p, 1, Some(Duration::from_secs(3)), &mut rng), Duration::from_secs(3));
    assert_eq!(retry_delay(&p, 1, Some(Duration::from_secs(3600)), &mut rng), MAX_RETRY_AFTER);
    // A shorter ask than the policy's own delay changes nothing.
    let slow = RequestRetry { attempts: 4, base: Duration::from_secs(60), max: Duration::from_secs(60) };
    let (mut a, mut b) = (rand::rngs::StdRng::seed_from_u64(5), rand::rngs::StdRng::seed_from_u64(5));
    assert_eq!(retry_delay(&slow, 2, Some(Duration::ZERO), &mut a), slow.delay(2, &mut b));
    assert_eq!(super::parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
    assert_eq!(super::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
}
