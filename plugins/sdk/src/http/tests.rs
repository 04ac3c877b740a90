//! Unit tests of the HTTP builder: they run natively and check the WIT
//! record each builder call produces (sending needs the host).

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::FieldHandle;

fn handle(field: &str) -> Handle {
    format!("rotator-handle:current/{field}")
}

fn is_secret(t: &Text, h: &Handle) -> bool {
    matches!(t, Text::Secret(x) if x == h)
}

fn is_plain(t: &Text, s: &str) -> bool {
    matches!(t, Text::Plain(x) if x == s)
}

#[test]
fn a_get_with_headers_query_and_basic_auth_becomes_one_record() {
    let pw = handle("password");
    let req = get("https://rabbit.internal:15672/api/whoami")
        .header("Accept", "application/json")
        .header_secret("X-Api-Key", &pw)
        .query("page", "2")
        .query("token", Text::secret(&pw))
        .basic_auth("admin", Text::secret(&pw))
        .timeout(Duration::from_millis(2500))
        .into_raw();
    assert_eq!(req.method, "GET");
    assert_eq!(req.url, "https://rabbit.internal:15672/api/whoami");
    assert_eq!(req.headers.len(), 2);
    assert_eq!(req.headers[0].name, "Accept");
    assert!(is_plain(&req.headers[0].value, "application/json"));
    assert!(is_secret(&req.headers[1].value, &pw));
    assert_eq!(req.query[0].0, "page");
    assert!(is_plain(&req.query[0].1, "2"));
    assert!(is_secret(&req.query[1].1, &pw));
    match &req.auth {
        Auth::Basic(b) => assert!(is_plain(&b.username, "admin") && is_secret(&b.password, &pw)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(req.body, Body::Empty));
    assert_eq!(req.timeout_ms, Some(2500));
    assert!(req.captures.is_empty());
}

#[test]
fn every_method_helper_sets_its_method() {
    let cases = [
        (get("u"), "GET"),
        (put("u"), "PUT"),
        (post("u"), "POST"),
        (patch("u"), "PATCH"),
        (delete("u"), "DELETE"),
        (head("u"), "HEAD"),
        (request("OPTIONS", "u"), "OPTIONS"),
    ];
    for (req, method) in cases {
        assert_eq!(req.as_raw().method, method);
    }
}

#[test]
fn the_last_auth_wins_and_bearer_takes_a_secret() {
    let token = handle("token");
    let req = get("u").basic_auth("a", "b").bearer(Text::secret(&token)).into_raw();
    assert!(matches!(&req.auth, Auth::Bearer(t) if is_secret(t, &token)), "{:?}", req.auth);
}

#[test]
fn json_with_secrets_names_each_place_and_adds_missing_placeholders() {
    let pw = handle("password");
    let key = handle("key");
    let req = put("u")
        .json_with_secrets(json!({"tags": "administrator"}), [("/password", &pw), ("/nested/a~1b", &key)])
        .into_raw();
    let Body::Json(body) = req.body else { panic!("not a JSON body") };
    let doc: Value = serde_json::from_str(&body.document).unwrap();
    assert_eq!(doc, json!({"tags": "administrator", "password": null, "nested": {"a/b": null}}));
    assert_eq!(body.secrets, vec![("/password".to_owned(), pw.clone()), ("/nested/a~1b".to_owned(), key)]);
    // The document never holds the handle, let alone the value.
    assert!(!body.document.contains("rotator-handle"));
}

#[test]
fn placeholders_keep_what_is_there_and_leave_odd_pointers_to_the_host() {
    let cases = [
        (json!({"password": "x"}), "/password", json!({"password": "x"})),
        (json!({"list": [1, 2]}), "/list/1", json!({"list": [1, 2]})),
        (json!({"list": [1]}), "/list/5", json!({"list": [1]})),
        (json!({"n": 3}), "/n/deeper", json!({"n": 3})),
        (json!({}), "", json!({})),
        (json!({}), "no-slash", json!({})),
        (json!({}), "/~0tilde", json!({"~tilde": null})),
        (Value::Null, "/a/b", json!({"a": {"b": null}})),
    ];
    for (mut doc, pointer, want) in cases {
        placeholder(&mut doc, pointer);
        assert_eq!(doc, want, "pointer {pointer:?}");
    }
}

#[test]
fn plain_json_has_no_secrets_and_forms_and_bytes_carry_their_values() {
    let req = post("u").json(json!({"a": 1})).into_raw();
    assert!(matches!(&req.body, Body::Json(b) if b.secrets.is_empty() && b.document == r#"{"a":1}"#));

    let pw = handle("password");
    let req = post("u").form([("grant_type", Text::from("password")), ("password", Text::secret(&pw))]).into_raw();
    let Body::Form(pairs) = &req.body else { panic!() };
    assert!(is_plain(&pairs[0].1, "password") && is_secret(&pairs[1].1, &pw));

    let req = post("u").bytes("text/plain", b"hi".to_vec()).into_raw();
    assert!(matches!(&req.body, Body::Bytes(b) if b == b"hi"));
    assert!(is_plain(&req.headers[0].value, "text/plain"));
}

#[test]
fn captures_name_their_field_and_source() {
    let req = post("u").capture("api_key", "/data/key").capture_xml("secret", "A/B/C").into_raw();
    assert_eq!(req.captures.len(), 2);
    assert!(matches!(&req.captures[0].source, CaptureSource::JsonPointer(p) if p == "/data/key"));
    assert_eq!(req.captures[1].field, "secret");
    assert!(matches!(&req.captures[1].source, CaptureSource::XmlPath(p) if p == "A/B/C"));
}

#[test]
fn timeouts_are_whole_milliseconds_clamped_to_the_wire_type() {
    let ms = |d: Duration| get("u").timeout(d).into_raw().timeout_ms;
    assert_eq!(ms(Duration::ZERO), Some(1));
    assert_eq!(ms(Duration::from_micros(1500)), Some(1));
    assert_eq!(ms(Duration::from_secs(30)), Some(30_000));
    assert_eq!(ms(Duration::from_secs(u64::MAX)), Some(u32::MAX));
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response::from(api::Response {
        status,
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        body: body.as_bytes().to_vec(),
        captured: vec![FieldHandle { field: "api_key".into(), handle: handle("api_key") }],
    })
}

#[test]
fn responses_give_status_headers_json_and_captures() {
    let r = response(200, &[("Content-Type", "application/json"), ("X-Two", "a"), ("x-two", "b")], r#"{"n":1}"#);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("X-TWO"), Some("a"), "the first value");
    assert_eq!(r.header("missing"), None);
    assert_eq!(r.json::<Value>().unwrap(), json!({"n": 1}));
    assert_eq!(r.captured("api_key"), Some(&handle("api_key")));
    assert_eq!(r.captured("other"), None);
    assert!(matches!(response(200, &[], "<html>").json::<Value>(), Err(RotateError::Permanent(_))));
    assert!(r.error_for_status().is_ok());
}

#[test]
fn error_statuses_become_errors_by_whether_a_retry_helps() {
    for status in [100, 200, 204, 299, 300, 301, 399, 400, 401, 403, 404, 408, 409, 429, 499, 500, 503, 599] {
        let result = response(status, &[], r#"{"error":"not_authorised"}"#).error_for_status();
        match (status, result) {
            (200..=299, Ok(r)) => assert_eq!(r.status(), status),
            (408 | 429 | 500..=599, Err(RotateError::Transient(m))) => assert!(m.contains(&status.to_string()), "{m}"),
            (100..=199 | 300..=407 | 409..=428 | 430..=499, Err(RotateError::Permanent(m))) => {
                assert!(m.contains(&format!("answered {status}")), "{m}")
            }
            (status, other) => panic!("{status}: {other:?}"),
        }
    }
    let Err(RotateError::Permanent(m)) = response(401, &[], r#"{"error":"not_authorised"}"#).error_for_status() else {
        panic!()
    };
    assert!(m.ends_with(r#"{"error":"not_authorised"}"#), "{m}");
    let Err(RotateError::Permanent(m)) = response(302, &[("Location", "https://elsewhere/")], "").error_for_status()
    else {
        panic!()
    };
    assert!(m.contains("redirected to https://elsewhere/"), "{m}");
}

#[test]
fn error_messages_quote_a_bounded_excerpt_without_control_characters() {
    let long = "x".repeat(10_000);
    let Err(RotateError::Transient(m)) = response(503, &[], &long).error_for_status() else { panic!() };
    assert!(m.len() < BODY_EXCERPT + 64, "{} bytes", m.len());
    assert!(m.ends_with('…'));
    let Err(RotateError::Permanent(m)) = response(400, &[], "bad\r\nInjected: line\u{1b}[31m").error_for_status()
    else {
        panic!()
    };
    assert!(!m.chars().any(char::is_control), "{m:?}");
    assert!(matches!(status_error(404, ""), RotateError::Permanent(m) if m == "the server answered 404"));
}

#[test]
fn http_errors_map_to_transient_or_permanent() {
    let transient = [HttpError::Dns("d".into()), HttpError::Connect("c".into()), HttpError::Timeout("t".into())];
    for e in transient {
        assert!(matches!(RotateError::from(e), RotateError::Transient(_)));
    }
    let permanent = [
        HttpError::Denied("no grant for https://x".into()),
        HttpError::InvalidRequest("i".into()),
        HttpError::Tls("t".into()),
        HttpError::TooLarge("l".into()),
        HttpError::BadResponse("b".into()),
    ];
    for e in permanent {
        assert!(matches!(RotateError::from(e), RotateError::Permanent(_)));
    }
    let RotateError::Permanent(m) = RotateError::from(HttpError::Denied("no grant for https://x".into())) else {
        panic!()
    };
    assert_eq!(m, "http: denied: no grant for https://x");
}

/// Decode `%XX` escapes, for checking [`path_segment`] round-trips.
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn path_segments_encode_everything_that_could_change_the_path() {
    assert_eq!(path_segment("/"), "%2F");
    assert_eq!(path_segment("app-user_1.x~"), "app-user_1.x~");
    assert_eq!(path_segment("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
    assert_eq!(path_segment(".."), "%2E%2E");
    assert_eq!(path_segment("."), "%2E");
    assert_eq!(path_segment("ü"), "%C3%BC");
    assert_eq!(path_segment(""), "");
}

/// A property test without extra dependencies: a fixed-seed generator
/// draws strings biased towards the characters that matter (separators,
/// dots, percent signs, non-ASCII), and every encoding must stay one
/// segment, be unable to mean `.` or `..`, and decode back exactly.
#[test]
fn path_segments_round_trip_and_stay_one_segment_for_random_names() {
    const ALPHABET: &[&str] = &["a", "Z", "9", "-", "_", ".", "~", "/", "\\", "%", "?", "#", " ", "ü", "\0", "%2F"];
    let mut state: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let name: String = (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect();
        let enc = path_segment(&name);
        assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)), "{name:?} -> {enc}");
        assert!(enc != "." && enc != "..", "{name:?}");
        assert_eq!(decode(&enc), name.as_bytes(), "{name:?} -> {enc}");
    }
}
