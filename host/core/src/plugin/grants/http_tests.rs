//! Tests of the HTTP grant check: the hostile fixtures of issue 11 as text,
//! grant validation, and a property test that whatever the check allows
//! stays inside the grant as a server decodes it.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

use super::*;

fn grant(origin: &str, paths: &[&str], methods: &[&str]) -> HttpGrant {
    let strings = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
    HttpGrant { origin: origin.into(), paths: strings(paths), methods: strings(methods) }
}

fn grants(list: &[HttpGrant]) -> Grants {
    Grants { http: list.to_vec(), ..Grants::default() }
}

fn kind(g: &Grants, method: &str, url: &str) -> Option<RefusalKind> {
    g.check_http(method, url).err().map(|r| r.kind)
}

#[test]
fn origins_compare_canonically() {
    let g = grants(&[grant("HTTP://Rabbit.Internal:80/", &[], &[])]);
    for url in [
        "http://rabbit.internal/api",
        "HTTP://RABBIT.INTERNAL:80/api",
        "http://Rabbit.Internal:0080/api",
        "http://rabbit.internal",
    ] {
        let target = g.check_http("GET", url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(target.origin, "http://rabbit.internal:80", "{url}");
        assert_eq!(target.url.host_str(), Some("rabbit.internal"));
    }
    assert_eq!(g.check_http("get", "http://rabbit.internal").unwrap().path, "/");
    let idna = grants(&[grant("https://bücher.example", &[], &[])]);
    for url in ["https://BÜCHER.example/x", "https://xn--bcher-kva.example:443/x"] {
        assert_eq!(idna.check_http("GET", url).unwrap().origin, "https://xn--bcher-kva.example:443", "{url}");
    }
    let v6 = grants(&[grant("http://[0:0:0:0:0:0:0:1]:8080", &[], &[])]);
    assert_eq!(v6.check_http("GET", "http://[::1]:8080/x").unwrap().origin, "http://[::1]:8080");
}

#[test]
fn the_spin_shape_and_other_urls_without_a_granted_authority_are_refused() {
    let g = grants(&[grant("http://granted", &[], &[])]);
    // CVE-2024-32980: no authority, the host taken from a `Host` header.
    for url in
        ["/api/users", "api/users", "//granted/api", "http:/granted/api", "http:granted/api", "http:///granted/api"]
    {
        assert_eq!(kind(&g, "GET", url), Some(RefusalKind::Invalid), "{url}");
    }
    assert_eq!(kind(&g, "GET", "ftp://granted/"), Some(RefusalKind::Invalid));
    assert_eq!(kind(&g, "GET", "file:///etc/passwd"), Some(RefusalKind::Invalid));
}

#[test]
fn userinfo_fragments_and_lookalike_hosts_never_reach_the_grant() {
    let g = grants(&[grant("http://granted", &[], &[])]);
    let invalid = |url: &str| assert_eq!(kind(&g, "GET", url), Some(RefusalKind::Invalid), "{url}");
    invalid("http://granted@evil/");
    invalid("http://user:pw@granted/");
    invalid("http://evil#@granted/");
    invalid("http://granted/#x");
    invalid("http://granted\\@evil/");
    invalid("http://evil\\granted/");
    invalid("http://gran\tted/");
    invalid("http://granted/a b");
    invalid("http://granted/\n");
    invalid(" http://granted/");
    invalid("http://gr%61nted/");
    invalid("http://granted/a?b c");
    let denied = |url: &str| assert_eq!(kind(&g, "GET", url), Some(RefusalKind::NotGranted), "{url}");
    denied("http://granted.evil/");
    denied("http://evil.granted/");
    denied("http://granted./");
    denied("http://granted:8080/");
    denied("https://granted/");
    denied("http://evil/?http://granted/");
    assert!(g.check_http("GET", "http://granted/@evil").is_ok(), "`@` in a path is a path");
}

#[test]
fn address_literals_of_the_metadata_service_are_refused_unless_granted_literally() {
    let other = grants(&[grant("http://granted", &[], &[])]);
    let spellings = [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://0251.0376.0251.0376/latest/meta-data/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://0xA9.0xFE.0xA9.0xFE/latest/meta-data/",
        "http://169.254.43518/latest/meta-data/",
    ];
    for url in spellings {
        let refusal = other.check_http("GET", url).unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::ForbiddenAddress, "{url}");
        assert!(refusal.message.contains("169.254.169.254:80/latest/meta-data/"), "{}", refusal.message);
        assert!(refusal.message.contains("cloud metadata"), "{}", refusal.message);
    }
    for url in ["http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/", "http://[fd00:ec2::254]/"] {
        assert_eq!(kind(&other, "GET", url), Some(RefusalKind::ForbiddenAddress), "{url}");
    }
    for url in
        ["http://0.0.0.0:80/", "http://[::]/", "http://[fe80::1]/", "http://224.0.0.1/", "http://100.100.100.200/"]
    {
        assert_eq!(kind(&other, "GET", url), Some(RefusalKind::ForbiddenAddress), "{url}");
    }

    let literal = grants(&[grant("http://169.254.169.254", &["/latest/meta-data"], &["GET"])]);
    for url in spellings {
        let target = literal.check_http("GET", url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(target.origin, "http://169.254.169.254:80");
        assert_eq!(target.url.as_str(), "http://169.254.169.254/latest/meta-data/");
    }
    assert_eq!(
        kind(&literal, "GET", "http://[::ffff:169.254.169.254]/latest/meta-data/"),
        Some(RefusalKind::ForbiddenAddress)
    );
    assert_eq!(
        kind(&literal, "GET", "http://169.254.169.254:8080/latest/meta-data/"),
        Some(RefusalKind::ForbiddenAddress)
    );
    assert_eq!(kind(&literal, "PUT", "http://169.254.169.254/latest/meta-data/"), Some(RefusalKind::NotGranted));
    assert_eq!(kind(&literal, "GET", "http://169.254.169.254/latest/api/token"), Some(RefusalKind::NotGranted));
    // Loopback and private addresses are ordinary origins.
    let local = grants(&[grant("http://127.0.0.1:15672", &[], &[])]);
    assert!(local.check_http("GET", "http://127.0.0.1:15672/api/overview").is_ok());
    assert_eq!(kind(&local, "GET", "http://10.0.0.1:15672/"), Some(RefusalKind::NotGranted));
}

#[test]
fn paths_and_methods_are_checked_on_the_canonical_text() {
    let g = grants(&[
        grant("https://rabbit:15672", &["/api/users/", "/api/permissions/%2f"], &["get", "Put"]),
        grant("https://rabbit:15672", &["/api/overview"], &[]),
    ]);
    let ok = |m: &str, url: &str| g.check_http(m, url).unwrap_or_else(|e| panic!("{m} {url}: {e}"));
    let put = ok("put", "https://rabbit:15672/api/users/app?x=1");
    assert_eq!((put.method.as_str(), put.path.as_str(), put.operation()), ("PUT", "/api/users/app", "PUT"));
    assert_eq!(put.url.query(), Some("x=1"));
    assert_eq!(put.shown(), "https://rabbit:15672/api/users/app");
    assert_eq!(ok("GET", "https://rabbit:15672/api/permissions/%2f/app").path, "/api/permissions/%2F/app");
    assert_eq!(ok("DELETE", "https://rabbit:15672/api/overview/x").method, reqwest::Method::DELETE);
    let denied = |m: &str, url: &str| assert_eq!(kind(&g, m, url), Some(RefusalKind::NotGranted), "{m} {url}");
    denied("POST", "https://rabbit:15672/api/users/app");
    denied("GET", "https://rabbit:15672/api/users");
    denied("GET", "https://rabbit:15672/api/usersx/app");
    denied("GET", "https://rabbit:15672/api/overviewx");
    denied("GET", "https://rabbit:15672/api/%75sers/app");
    let invalid = |m: &str, url: &str| assert_eq!(kind(&g, m, url), Some(RefusalKind::Invalid), "{m} {url}");
    for path in ["/api/users/../../admin", "/api/users/%2e%2e/x", "/api/users/..%2f..%2fx", "/api/users/%252e%252e/x"] {
        invalid("GET", &format!("https://rabbit:15672{path}"));
    }
    invalid("GET", "https://rabbit:15672/api/users//x");
    invalid("OPTIONS", "https://rabbit:15672/api/users/app");
    invalid("G ET", "https://rabbit:15672/api/users/app");
}

#[test]
fn a_read_only_run_sends_only_get_and_head() {
    let g = Grants { http: vec![grant("http://granted", &[], &[])], ..Grants::default() }.to_read_only();
    assert!(g.check_http("GET", "http://granted/x").is_ok());
    assert!(g.check_http("head", "http://granted/x").is_ok());
    for m in ["POST", "PUT", "PATCH", "DELETE"] {
        assert_eq!(kind(&g, m, "http://granted/x"), Some(RefusalKind::ReadOnly), "{m}");
    }
    assert_eq!(kind(&g, "GET", "http://other/x"), Some(RefusalKind::NotGranted), "read-only never grants more");
}

#[test]
fn refusals_name_method_origin_and_path_never_the_query() {
    let g = grants(&[grant("http://granted", &["/ok"], &[])]);
    for url in
        ["http://granted/no?password=hunter2", "http://granted/a/../b?password=hunter2", "http://x@y/?password=hunter2"]
    {
        let r = g.check_http("GET", url).unwrap_err();
        assert!(!r.message.contains("hunter2") && !r.target.contains("hunter2"), "{r:?}");
        assert!(r.message.starts_with("GET `"), "{}", r.message);
    }
    for url in
        ["http://admin:hunter2@granted/ok", "https://hunter2@granted/ok?x", "//hunter2@granted/", "x://a:hunter2@b@c/d"]
    {
        let r = g.check_http("GET", url).unwrap_err();
        assert!(!r.message.contains("hunter2") && !r.target.contains("hunter2"), "{r:?}");
        assert!(r.message.contains("…@"), "{}", r.message);
    }
    let r = g.check_http("DELETE", "http://granted/no?password=hunter2").unwrap_err();
    assert_eq!(r.target, "http://granted:80/no");
    assert_eq!(r.method, "DELETE");
    assert_eq!(r.message, "DELETE `http://granted:80/no` is not granted");
    let target = g.check_http("GET", "http://granted/ok?password=hunter2").unwrap();
    assert!(!format!("{target:?}").contains("hunter2"));
    let long = format!("http://granted/{}", "a".repeat(MAX_URL_BYTES));
    assert!(matches!(g.check_http("GET", &long).unwrap_err().message.len(), 0..=400));
}

#[test]
fn grants_are_validated_and_canonicalised() {
    let canonical = |origin: &str| grant(origin, &[], &[]).canonical().map(|g| g.origin);
    assert_eq!(canonical("HTTP://Rabbit.Internal:80/").unwrap(), "http://rabbit.internal:80");
    assert_eq!(canonical("https://h").unwrap(), "https://h:443");
    assert_eq!(canonical("http://[0:0:0:0:0:0:0:1]:8080/").unwrap(), "http://[::1]:8080");
    assert_eq!(canonical("http://0xa9fea9fe").unwrap(), "http://169.254.169.254:80");
    let bad = |origin: &str| match grant(origin, &[], &[]).validate() {
        Err(GrantError::Origin { why, .. }) => why,
        other => panic!("{origin}: {other:?}"),
    };
    assert_eq!(bad("https://h/api"), UrlError::NotBare);
    assert_eq!(bad("https://h?x"), UrlError::NotBare);
    assert_eq!(bad("https://h#x"), UrlError::Fragment);
    assert_eq!(bad("https://u@h"), UrlError::UserInfo);
    assert_eq!(bad("ftp://h"), UrlError::NotAbsolute);
    assert_eq!(bad("rabbit.internal:15672"), UrlError::NotAbsolute);
    assert_eq!(bad("http://h:0"), UrlError::PortZero);
    assert!(matches!(bad("http://h:99999"), UrlError::Parse(_)));
    assert_eq!(bad("http://"), UrlError::NoHost);
    let g = grant("https://h", &["/api/users", "/API/%2f", "/api/users"], &["get", "PUT", "Get"]).canonical().unwrap();
    assert_eq!(
        (g.paths, g.methods),
        (vec!["/api/users".to_owned(), "/API/%2F".into()], vec!["GET".to_owned(), "PUT".into()])
    );
    for path in ["api", "/a/../b", "/a//b", "/a?b", "/a\\b"] {
        let err = grant("https://h", &[path], &[]).validate().unwrap_err();
        assert!(matches!(err, GrantError::HttpPath { .. }), "{path}: {err:?}");
        assert!(err.to_string().contains("https://h:443"), "{err}");
    }
    let err = grant("https://h", &[], &["OPTIONS"]).validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "grant for `https://h:443`: unknown method `OPTIONS` (expected GET, HEAD, POST, PUT, PATCH or DELETE)"
    );
    // An invalid grant (as a plugin might declare one) grants nothing.
    assert_eq!(
        kind(&grants(&[grant("https://h/api", &[], &[])]), "GET", "https://h/api"),
        Some(RefusalKind::NotGranted)
    );
}

// ---- Property: what is allowed stays inside the grant as a server sees it.

/// One round of percent-decoding, as text.
fn decode(text: &str) -> String {
    String::from_utf8_lossy(&super::super::url_path::percent_decode(text.as_bytes())).into_owned()
}

/// RFC 3986 §5.2.4, as servers resolve dot segments.
fn remove_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *s {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The ways servers read a path: decoded once or twice, `\` as `/`,
/// Tomcat's `;…` dropped from each segment; then dots resolved.
fn server_views(path: &str) -> Vec<String> {
    let once = decode(path);
    let twice = decode(&once);
    let tomcat = |p: &str| p.split('/').map(|s| s.split(';').next().unwrap_or_default()).collect::<Vec<_>>().join("/");
    [once.clone(), twice.clone(), once.replace('\\', "/"), tomcat(&once), tomcat(&decode(&tomcat(path)))]
        .iter()
        .map(|p| remove_dots(p))
        .collect()
}

/// Does the server's view `path` lie inside the view `prefix` of a grant?
fn inside(prefix: &str, path: &str) -> bool {
    path == prefix || path.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
}

fn pieces() -> impl Strategy<Value = String> {
    let harmless = prop::sample::select(vec![
        "/",
        "api",
        "users",
        "permissions",
        "x",
        "A",
        "%C3%A9",
        "%2F",
        "%2f",
        "@",
        ":",
        "~",
        "=",
        "a.b",
        "%2541",
    ]);
    let hostile = prop::sample::select(vec![
        "/", ".", "..", "%2e", "%2E", "%5c", "%5C", "\\", "#", "?", ";", "%252e", "%25", "%00", "é", "%20", " ", "\t",
        "..;", "%",
    ]);
    prop_oneof![4 => harmless, 1 => hostile].prop_map(str::to_owned)
}

fn hosts() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "granted",
        "GRANTED",
        "granted.evil",
        "evil",
        "granted.",
        "bücher",
        "BÜCHER",
        "xn--bcher-kva",
        "127.0.0.1",
        "0x7f000001",
        "2130706433",
        "[::1]",
        "[0::1]",
        "169.254.169.254",
        "0xa9fea9fe",
        "[::ffff:169.254.169.254]",
        "granted@evil",
        "evil#@granted",
        "",
    ])
    .prop_map(str::to_owned)
}

fn ports() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", ":80", ":443", ":8080", ":0080", ":", ":99999"]).prop_map(str::to_owned)
}

fn prefixes() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["/", "/api", "/api/", "/api/users", "/api/users/", "/api/permissions/%2F"])
        .prop_map(str::to_owned)
}

fn http_grants() -> impl Strategy<Value = Vec<HttpGrant>> {
    let origin = (prop::sample::select(vec!["http", "https", "HTTP"]), hosts(), ports())
        .prop_map(|(s, h, p)| format!("{s}://{h}{p}"));
    let methods = prop::sample::subsequence(vec!["GET", "head", "POST", "Put", "DELETE", "PATCH"], 0..=3);
    let one = (origin, prop::collection::vec(prefixes(), 0..3), methods).prop_map(|(origin, paths, methods)| {
        HttpGrant { origin, paths, methods: methods.into_iter().map(str::to_owned).collect() }
    });
    prop::collection::vec(one, 1..4)
}

/// A request, usually to one of `origins` (in some case), else anywhere.
fn requests(origins: Vec<String>) -> impl Strategy<Value = (String, String)> {
    let scheme = prop::sample::select(vec!["http://", "https://", "HTTP://", "hTTps://", "http:/", "//", ""]);
    let anywhere = (scheme, hosts(), ports()).prop_map(|(s, h, p)| format!("{s}{h}{p}"));
    let granted =
        (prop::sample::select(origins), any::<bool>()).prop_map(|(o, upper)| if upper { o.to_uppercase() } else { o });
    let origin = prop_oneof![3 => granted, 1 => anywhere];
    let tail = prop::collection::vec(pieces(), 0..10).prop_map(|p| p.concat());
    let query = prop::option::of(prop::sample::select(vec!["?a=1", "?x=/..", "?q=%2e%2e&r=#"]));
    let url = (origin, prefixes(), tail, query)
        .prop_map(|(origin, prefix, tail, q)| format!("{origin}{prefix}{tail}{}", q.unwrap_or_default()));
    let method = prop::sample::select(vec!["GET", "get", "HEAD", "POST", "Put", "PATCH", "DELETE", "OPTIONS", "TRACE"]);
    (method.prop_map(str::to_owned), url)
}

/// Grants, a request mostly aimed at them, and whether the run is read-only.
fn grant_cases() -> impl Strategy<Value = (Vec<HttpGrant>, (String, String), bool)> {
    http_grants().prop_flat_map(|list| {
        let origins = list.iter().map(|g| g.origin.trim_end_matches('/').to_owned()).collect();
        (Just(list), requests(origins), any::<bool>())
    })
}

/// Check one allowed target against the grants it was allowed by.
fn stays_inside(g: &Grants, raw_method: &str, target: &HttpTarget) -> Result<(), TestCaseError> {
    let method = target.method.as_str();
    prop_assert_eq!(Some(method), http_method(raw_method));
    prop_assert!(!g.read_only || READ_ONLY_METHODS.contains(&method));
    prop_assert_eq!(target.url.path(), target.path.as_str());
    prop_assert!(
        target.url.username().is_empty() && target.url.password().is_none() && target.url.fragment().is_none()
    );
    prop_assert_eq!(origin_of(&target.url).unwrap(), target.origin.clone());
    let views = server_views(&target.path);
    let covered = g.http.iter().filter_map(|grant| grant.canonical().ok()).any(|c| {
        c.origin == target.origin
            && (c.methods.is_empty() || c.methods.iter().any(|m| m == method))
            && (c.paths.is_empty()
                || c.paths.iter().any(|p| server_views(p).iter().zip(&views).all(|(pv, v)| inside(pv, v))))
    });
    prop_assert!(covered, "{} {} escapes its grant: views {:?}", method, target.shown(), views);
    Ok(())
}

fn run_grant_property(rng_seed: RngSeed, cases: u32) {
    let config = Config { cases, rng_seed, failure_persistence: None, ..Config::default() };
    let (allowed, refused) = (Cell::new(0u32), Cell::new(0u32));
    TestRunner::new(config)
        .run(&grant_cases(), |(list, (method, url), read_only)| {
            let g = Grants { http: list, read_only, ..Grants::default() };
            match g.check_http(&method, &url) {
                Ok(target) => {
                    allowed.set(allowed.get() + 1);
                    stays_inside(&g, &method, &target)
                }
                Err(refusal) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(!refusal.message.contains("?a=1") && !refusal.message.contains("?q="));
                    Ok(())
                }
            }
        })
        .unwrap();
    // Both sides must be exercised, or the property proves nothing.
    assert!(allowed.get() >= cases / 50 && refused.get() >= cases / 4, "allowed {allowed:?}, refused {refused:?}");
}

#[test]
fn property_allowed_requests_stay_inside_their_grant_as_servers_decode_them() {
    run_grant_property(RngSeed::Fixed(0x0011_7700), 20_000);
}

#[test]
fn property_allowed_requests_stay_inside_their_grant_random_seed() {
    run_grant_property(RngSeed::Random, 5_000);
}
