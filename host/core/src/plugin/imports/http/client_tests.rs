//! Tests of the shared client: the resolver's screening, error
//! classification on real sockets, redirects, and a property test that the
//! request which actually leaves is the one the grant check approved.

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::plugin::grants::{Grants, HttpGrant};

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 0)
}

#[test]
fn a_name_is_refused_if_any_of_its_addresses_is_forbidden() {
    let ok = vec![addr("10.0.0.5"), addr("::1"), addr("127.0.0.1")];
    assert_eq!(screen("rabbit.internal", ok.clone()).unwrap(), ok, "order and addresses kept");
    for bad in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.251"] {
        let list = vec![addr("10.0.0.5"), addr(bad), addr("10.0.0.6")];
        match screen("rabbit.internal", list) {
            Err(ResolveError::Forbidden { address, .. }) => assert_eq!(address, addr(bad).ip()),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(matches!(screen("x", Vec::new()), Err(ResolveError::NoAddress { .. })));
}

#[tokio::test]
async fn localhost_resolves_to_loopback_and_is_allowed() {
    let found = GuardedResolver::system().resolve_host("localhost").await.unwrap();
    assert!(!found.is_empty());
    assert!(found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
}

/// A loopback server that records each request's line and `Host` header
/// and answers every request with `answer`.
async fn server(answer: &'static str) -> (u16, mpsc::UnboundedReceiver<(String, Option<String>)>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let mut lines = head.split("\r\n");
            let line = lines.next().unwrap_or_default().to_owned();
            let host = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("host"))
                .map(|(_, value)| value.trim().to_owned());
            let _ = tx.send((line, host));
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (port, rx)
}

const NO_CONTENT: &str = "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn a_name_resolving_to_a_forbidden_address_never_connects() {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://metadata.test:{port}/latest/meta-data/");
    for forbidden in
        [IpAddr::from([169, 254, 169, 254]), IpAddr::from(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254))]
    {
        // Loopback first: even a usable address beside it does not help.
        let resolver = GuardedResolver { lookup: Lookup::Fixed(vec![Ipv4Addr::LOCALHOST.into(), forbidden]) };
        let err = build_client(resolver).get(&url).send().await.unwrap_err();
        match classify(&err) {
            HttpError::Denied(m) => assert!(m.contains(&forbidden.to_string()) && m.contains("metadata.test"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "nothing connected");
    }
    // The control: the same name on loopback alone connects.
    let (port, mut seen) = server(NO_CONTENT).await;
    let resolver = GuardedResolver { lookup: Lookup::Fixed(vec![Ipv4Addr::LOCALHOST.into()]) };
    let answer = build_client(resolver).get(format!("http://metadata.test:{port}/x")).send().await.unwrap();
    assert_eq!(answer.status(), 204);
    assert_eq!(seen.recv().await.unwrap(), ("GET /x HTTP/1.1".into(), Some(format!("metadata.test:{port}"))));
}

#[tokio::test]
async fn failures_are_classified_for_the_plugin() {
    let client = shared_client();
    let dns = client.get("http://no-such-host.invalid/").send().await.unwrap_err();
    assert!(matches!(classify(&dns), HttpError::Dns(m) if m.contains("no-such-host.invalid")), "{:?}", classify(&dns));

    let closed = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let refused = client.get(format!("http://127.0.0.1:{closed}/?token=hunter2")).send().await.unwrap_err();
    let refused = classify(&refused);
    assert!(matches!(&refused, HttpError::Connect(_)), "{refused:?}");
    assert!(!format!("{refused:?}").contains("hunter2"), "the URL (and its query) is never in the message");

    // A plain-HTTP server answering a TLS client hello at once.
    let plain = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = plain.accept().await.unwrap();
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n").await;
        let _ = stream.read(&mut [0u8; 1024]).await;
    });
    let tls = client.get(format!("https://127.0.0.1:{port}/")).send().await.unwrap_err();
    assert!(matches!(classify(&tls), HttpError::Tls(_)), "{:?}", classify(&tls));

    // A server that accepts and never answers.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (_stream, _) = silent.accept().await.unwrap();
        std::future::pending::<()>().await
    });
    let request = client.get(format!("http://127.0.0.1:{port}/")).timeout(Duration::from_millis(200));
    let timeout = request.send().await.unwrap_err();
    assert!(matches!(classify(&timeout), HttpError::Timeout(_)), "{:?}", classify(&timeout));
    hold.abort();
}

#[tokio::test]
async fn redirects_come_back_to_the_plugin_unfollowed() {
    let (target, mut followed) = server(NO_CONTENT).await;
    let answer: &'static str =
        format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target}/elsewhere\r\nconnection: close\r\n\r\n")
            .leak();
    let (port, mut seen) = server(answer).await;
    let response = shared_client().get(format!("http://127.0.0.1:{port}/start")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(seen.recv().await.unwrap().0, "GET /start HTTP/1.1");
    assert!(followed.try_recv().is_err(), "the redirect was not followed");
}

#[test]
fn refusals_become_invalid_request_or_denied() {
    let g = Grants::default();
    assert!(matches!(HttpError::from(g.check_http("GET", "/relative").unwrap_err()), HttpError::InvalidRequest(_)));
    assert!(matches!(HttpError::from(g.check_http("GET", "http://h/").unwrap_err()), HttpError::Denied(_)));
}

// ---- Property: the request that leaves is the request that was checked.

fn leaving_cases(port: u16) -> impl Strategy<Value = (Vec<HttpGrant>, String, String)> {
    let grant = (
        prop::sample::select(vec!["http://127.0.0.1", "http://localhost", "HTTP://LocalHost"]),
        prop::collection::vec(prop::sample::select(vec!["/", "/api", "/api/users/", "/api/permissions/%2F"]), 0..3),
    )
        .prop_map(move |(origin, paths)| HttpGrant {
            origin: format!("{origin}:{port}"),
            paths: paths.into_iter().map(str::to_owned).collect(),
            methods: Vec::new(),
        });
    let host = prop::sample::select(vec!["127.0.0.1", "localhost", "LOCALHOST", "2130706433", "0x7f.1", "[::1]"]);
    let prefix = prop::sample::select(vec!["/", "/api", "/api/", "/api/users/", "/api/permissions/%2f/"]);
    let piece = prop::sample::select(vec![
        "a",
        "users",
        "%2F",
        "%2e",
        "x.y",
        "..",
        "%25",
        "%2541",
        ";v=1",
        "@",
        ":",
        "~",
        "!$&'()*+,=",
        "/",
        "%C3%A9",
    ]);
    let tail = prop::collection::vec(piece, 0..6).prop_map(|p| p.concat());
    let query = prop::option::of(prop::sample::select(vec!["?a=1", "?x=%2e%2e/..", "?q="]));
    let method = prop::sample::select(vec!["GET", "head", "Post", "PUT", "patch", "DELETE"]);
    (prop::collection::vec(grant, 1..3), host, prefix, tail, query, method).prop_map(
        move |(grants, host, prefix, tail, query, method)| {
            let url = format!("http://{host}:{port}{prefix}{tail}{}", query.unwrap_or_default());
            (grants, method.to_owned(), url)
        },
    )
}

#[test]
fn property_the_request_that_leaves_is_the_one_the_check_approved() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (port, seen) = rt.block_on(server(NO_CONTENT));
    let seen = RefCell::new(seen);
    let client = shared_client();
    let config =
        Config { cases: 64, rng_seed: RngSeed::Fixed(0x005E_ED0B), failure_persistence: None, ..Config::default() };
    let (sent, by_name) = (Cell::new(0u32), Cell::new(0u32));
    TestRunner::new(config)
        .run(&leaving_cases(port), |(list, method, url)| {
            let grants = Grants { http: list, ..Grants::default() };
            let target = grants.check_http(&method, &url);
            prop_assume!(target.is_ok());
            let target = target.unwrap();
            let response = rt.block_on(client.request(target.method.clone(), target.url.clone()).send());
            prop_assert_eq!(response.map(|r| r.status().as_u16()).map_err(|e| classify(&e)), Ok(204));
            let (line, host) = rt.block_on(seen.borrow_mut().recv()).unwrap();
            let query = target.url.query().map(|q| format!("?{q}")).unwrap_or_default();
            prop_assert_eq!(line, format!("{} {}{query} HTTP/1.1", target.method, target.path));
            let authority = target.origin.split_once("://").unwrap().1;
            prop_assert_eq!(host.as_deref(), Some(authority));
            sent.set(sent.get() + 1);
            by_name.set(by_name.get() + u32::from(matches!(target.url.host(), Some(url::Host::Domain(_)))));
            Ok(())
        })
        .unwrap();
    assert_eq!(sent.get(), 64, "every case sent a request");
    // Both paths to a connection: through the guarded resolver and to a literal.
    assert!((1..64).contains(&by_name.get()), "{} of 64 went to `localhost`", by_name.get());
}
