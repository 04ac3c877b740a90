//! Unit tests of the canonical path: what parses, and the reason named for
//! every kind of refusal. The adversarial property (grant, URL and server
//! agree) is in tests/tests/sandbox/paths.rs.

use super::*;

fn refused(raw: &str) -> PathError {
    VaultPath::parse(raw).expect_err(raw)
}

#[test]
fn plain_paths_parse_to_their_canonical_text() {
    for (raw, canonical) in [
        ("secret/data/app", "secret/data/app"),
        ("/secret/data/app/", "secret/data/app"),
        ("sys/internal/ui/mounts/secret", "sys/internal/ui/mounts/secret"),
        ("secret/data/a b/é/日本", "secret/data/a b/é/日本"),
        ("secret/data/a\u{a0}b", "secret/data/a\u{a0}b"),
        ("secret/data/...", "secret/data/..."),
        ("a+b/*/c:d", "a+b/*/c:d"),
    ] {
        let p = VaultPath::parse(raw).unwrap();
        assert_eq!(p.as_str(), canonical);
        assert_eq!(p.segments().collect::<Vec<_>>().join("/"), canonical);
        assert_eq!(VaultPath::parse(p.as_str()).unwrap(), p, "canonical text parses to itself");
    }
}

#[test]
fn dot_and_empty_segments_are_refused() {
    for raw in ["a/../b", "a/./b", "..", ".", "a/..", "./a", "../sys"] {
        assert!(matches!(refused(raw), PathError::DotSegment(_)), "{raw}");
    }
    for raw in ["a//b", "//a", "a//", "///"] {
        assert!(matches!(refused(raw), PathError::EmptySegment(_)), "{raw}");
    }
    for raw in ["", "/", "//"] {
        assert!(matches!(refused(raw), PathError::Empty | PathError::EmptySegment(_)), "{raw:?}");
    }
}

#[test]
fn every_percent_sign_is_refused_naming_what_it_encodes() {
    let cases = [("a/%2e%2e/b", "`.` (%2E)"), ("a%2Fb", "`/` (%2F)"), ("a%252e", "`%` (%25)"), ("a%5cb", "`\\` (%5C)")];
    for (raw, what) in cases {
        let e = refused(raw);
        assert!(matches!(&e, PathError::Encoded { what: w, .. } if w == what), "{raw}: {e}");
        assert!(e.to_string().contains("the host encodes them"), "{e}");
    }
    assert!(matches!(refused("a%20b"), PathError::Encoded { .. }), "even a harmless escape: it is ambiguous");
    assert!(matches!(refused("100%"), PathError::Percent(_)));
    assert!(matches!(refused("a%zz"), PathError::Percent(_)));
}

#[test]
fn characters_a_url_would_read_differently_are_refused() {
    for (raw, word) in [
        ("a?list=true", "query"),
        ("a#b", "fragment"),
        ("a\\..\\b", "read as `/`"),
        ("a\0b", "control"),
        ("a\tb", "control"),
        ("a\nb", "control"),
        ("a\u{7f}", "control"),
        ("a\u{85}", "control"),
        ("secret/data/ ", "white space"),
        ("secret/ x/y", "white space"),
        ("secret/x\u{3000}/y", "white space"),
    ] {
        let e = refused(raw);
        assert!(matches!(e, PathError::Character { .. }), "{raw:?}: {e}");
        assert!(e.to_string().contains(word), "{raw:?}: {e}");
    }
}

#[test]
fn absolute_urls_are_refused() {
    for raw in ["http://evil/v1/sys", "https:x", "file:/etc/passwd", "HTTP://x"] {
        assert!(matches!(refused(raw), PathError::AbsoluteUrl(_)), "{raw}");
    }
    // A colon later in a path is just a character.
    assert!(VaultPath::parse("secret/data/a:b").is_ok());
    assert!(matches!(refused("//evil.example/v1/x"), PathError::EmptySegment(_)));
}

#[test]
fn errors_quote_a_bounded_escaped_excerpt() {
    let long = format!("{}\u{1b}[2J%2e", "a".repeat(10_000));
    let e = refused(&long).to_string();
    assert!(e.len() < 400, "{} bytes", e.len());
    assert!(!e.contains('\u{1b}'));
    assert!(matches!(refused(&"a/".repeat(3000)), PathError::TooLong(6000)));
    let e = refused("x\u{1b}[31m?").to_string();
    assert!(e.contains("\\u{1b}"), "{e}");
}

#[test]
fn joins_stay_canonical() {
    let mount = VaultPath::parse("team/kv").unwrap();
    let path = VaultPath::parse("app/db").unwrap();
    assert_eq!(mount.child("data").join(&path).as_str(), "team/kv/data/app/db");
    assert_eq!(format!("{mount}"), "team/kv");
    assert_eq!(format!("{mount:?}"), "VaultPath(\"team/kv\")");
    assert_eq!("a/b".to_vault_path().unwrap(), VaultPath::parse("a/b").unwrap());
    assert_eq!("a/b".parse::<VaultPath>().unwrap().as_str(), "a/b");
}
