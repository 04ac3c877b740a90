//! URL paths of HTTP grants and requests, in one canonical form.
//!
//! The sandbox's rule for Vault paths ([`crate::vault::path`]) holds for URLs
//! too: parse once, refuse everything ambiguous, clean nothing up. A URL
//! path is checked on the text the plugin wrote, split on its raw `/`:
//!
//! - only RFC 3986 path characters (letters, digits, `-._~!$&'()*+,;=:@`,
//!   `/` and `%XX` escapes); a `\`, white space, a control character or a
//!   non-ASCII character is refused (the plugin percent-encodes);
//! - no empty segment except a trailing one (`/a//b` is refused, `/a/` is not);
//! - no segment is a dot segment at any decoding depth: the segment is
//!   percent-decoded up to [`MAX_DECODE_DEPTH`] times, and at every depth
//!   each of its `/`-separated parts, cut at a `;` (Tomcat's path parameter)
//!   and trimmed of white space, must not be made of dots only. So `..`,
//!   `%2e%2E`, `..%2f`, `..;x`, and the double-encoded `%252e%252e` are all
//!   refused, whatever decoding a server does; a `%2F` inside a harmless
//!   segment is allowed (RabbitMQ writes its vhost `/` as `%2F` in
//!   `/api/permissions/%2F/user`). Double encoding as such is allowed
//!   (`%2541` is a value with a `%` in it): only what it decodes to counts.
//! - once decoded, no `\`, NUL, invalid UTF-8 (overlong `%C0%AE` was read as
//!   `.` by old servers) or character that Unicode compatibility
//!   normalisation turns into `.`, `/` or `\` (`%EF%BC%8F`, `／`).
//!
//! Percent-escapes are normalised to uppercase hex once, here, so a grant's
//! `/api/%2f` and a request's `/api/%2F` compare equal. Grants match on whole
//! segments ([`UrlPath::covers`]).

/// How many times a segment is percent-decoded to look for dot segments. A
/// segment that still decodes to something new after this many is refused:
/// nothing legitimate is encoded that deep.
pub const MAX_DECODE_DEPTH: usize = 4;

/// A URL path in canonical form (see the module documentation): what a
/// grant's prefix is written as and what a request sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlPath(String);

/// Why a URL path was refused. The messages never quote the path: the
/// caller names the request (or grant) they belong to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlPathError {
    /// A grant's path prefix that does not begin with `/`.
    #[error("the path does not start with `/`")]
    NotAbsolute,
    /// `/a//b`: servers disagree on whether that is `/a/b`.
    #[error("the path has an empty segment (`//`)")]
    EmptySegment,
    /// `.`, `..`, in any spelling a server might decode to them.
    #[error("the path has a `.` or `..` segment{}", depth_note(*depth))]
    DotSegment {
        /// How many percent-decodings it took to appear (0: as written).
        depth: usize,
    },
    /// `\`, written or encoded: some servers read it as `/`.
    #[error("the path holds a `\\` (or %5C), which some servers read as `/`")]
    Backslash,
    /// `%00`.
    #[error("the path holds an encoded NUL byte (%00)")]
    Nul,
    /// A `%` not followed by two hex digits.
    #[error("the path holds a `%` that starts no escape (write `%25`)")]
    BadEscape,
    /// A character outside RFC 3986's path characters.
    #[error("the path holds {0:?}, which must be percent-encoded")]
    Character(char),
    /// Non-ASCII text: the plugin percent-encodes it (UTF-8).
    #[error("the path holds non-ASCII text, which must be percent-encoded")]
    NonAscii,
    /// Decodes to bytes that are not UTF-8.
    #[error("the path decodes to bytes that are not UTF-8")]
    NotUtf8,
    /// Decodes to `．`, `／`, `＼` or a sibling that NFKC makes `.`, `/`, `\`.
    #[error("the path decodes to a character that Unicode normalisation turns into `.`, `/` or `\\`")]
    LookAlike,
    /// Still decoding to something new after [`MAX_DECODE_DEPTH`] rounds.
    #[error("the path is percent-encoded more than {MAX_DECODE_DEPTH} levels deep")]
    TooDeep,
}

fn depth_note(depth: usize) -> String {
    match depth {
        0 => String::new(),
        1 => " once percent-decoded".into(),
        n => format!(" once percent-decoded {n} times"),
    }
}

/// Characters NFKC maps to `.`, `..`, `...`, `/` or `\`.
const LOOK_ALIKES: [char; 8] = [
    '\u{2024}', '\u{2025}', '\u{2026}', '\u{FE52}', '\u{FF0E}', // dots
    '\u{FF0F}', // solidus
    '\u{FE68}', '\u{FF3C}', // reverse solidus
];

impl UrlPath {
    /// Parse `raw` (which must start with `/`) into canonical form, or say
    /// why it is ambiguous.
    pub fn parse(raw: &str) -> Result<Self, UrlPathError> {
        let Some(rest) = raw.strip_prefix('/') else { return Err(UrlPathError::NotAbsolute) };
        let mut out = String::with_capacity(raw.len());
        out.push('/');
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                    let hex = hex.ok_or(UrlPathError::BadEscape)?;
                    out.push('%');
                    out.extend(hex.iter().map(|h| char::from(h.to_ascii_uppercase())));
                    i += 3;
                    continue;
                }
                b'\\' => return Err(UrlPathError::Backslash),
                b if !b.is_ascii() => return Err(UrlPathError::NonAscii),
                b if b == b'/' || is_path_char(b) => out.push(char::from(b)),
                b => return Err(UrlPathError::Character(char::from(b))),
            }
            i += 1;
        }
        let segments: Vec<&str> = out[1..].split('/').collect();
        let last = segments.len() - 1;
        for (n, segment) in segments.iter().enumerate() {
            if segment.is_empty() {
                if n != last {
                    return Err(UrlPathError::EmptySegment);
                }
                continue;
            }
            check_segment(segment.as_bytes())?;
        }
        Ok(Self(out))
    }

    /// The canonical text, beginning with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments after the leading `/` (a trailing `/` gives a last
    /// empty one).
    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/')
    }

    /// Does this grant prefix cover `path`? On whole segments: `/api/users`
    /// covers `/api/users`, `/api/users/` and `/api/users/x`, never
    /// `/api/usersx`; a prefix ending in `/` covers what is below it
    /// (`/api/users/` covers `/api/users/` and `/api/users/x`, not
    /// `/api/users`); `/` covers everything.
    pub fn covers(&self, path: &UrlPath) -> bool {
        let prefix: Vec<&str> = self.segments().collect();
        let (body, below) = match prefix.split_last() {
            Some((&"", body)) => (body, true),
            _ => (&prefix[..], false),
        };
        let mut segments = path.segments();
        let same = body.iter().all(|want| segments.next() == Some(*want));
        same && (!below || segments.next().is_some())
    }
}

impl std::fmt::Display for UrlPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 3986 `pchar` minus `%` (escapes are handled apart).
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// Check one segment as written and at every decoding depth.
fn check_segment(raw: &[u8]) -> Result<(), UrlPathError> {
    let mut text = raw.to_vec();
    for depth in 0..=MAX_DECODE_DEPTH {
        check_decoded(&text, depth)?;
        let next = percent_decode(&text);
        if next == text {
            return Ok(());
        }
        text = next;
    }
    Err(UrlPathError::TooDeep)
}

/// The rules for a segment as a server may see it after `depth` decodings.
fn check_decoded(text: &[u8], depth: usize) -> Result<(), UrlPathError> {
    if text.contains(&b'\\') {
        return Err(UrlPathError::Backslash);
    }
    if text.contains(&0) {
        return Err(UrlPathError::Nul);
    }
    let Ok(decoded) = std::str::from_utf8(text) else { return Err(UrlPathError::NotUtf8) };
    if decoded.contains(LOOK_ALIKES) {
        return Err(UrlPathError::LookAlike);
    }
    for part in decoded.split('/') {
        // Tomcat drops `;…` from a segment before resolving dots; IIS
        // trims trailing dots and spaces; so `..;x`, `.. ` and `...` count.
        let base = part.split(';').next().unwrap_or_default().trim();
        if !base.is_empty() && base.bytes().all(|b| b == b'.') {
            return Err(UrlPathError::DotSegment { depth });
        }
    }
    Ok(())
}

/// One round of percent-decoding; a `%` that starts no escape stays.
pub(super) fn percent_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = text.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (text[i], hex) {
            (b'%', Some(&[hi, lo])) => {
                out.push(hex_value(hi) << 4 | hex_value(lo));
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The value of one hex digit (checked by the caller).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit.to_ascii_lowercase() - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<String, UrlPathError> {
        UrlPath::parse(raw).map(|p| p.0)
    }

    #[test]
    fn escapes_are_normalised_to_uppercase_once() {
        assert_eq!(parse("/api/permissions/%2f/user").unwrap(), "/api/permissions/%2F/user");
        assert_eq!(parse("/a%c3%a9b").unwrap(), "/a%C3%A9b");
        assert_eq!(parse("/").unwrap(), "/");
        assert_eq!(parse("/api/users/").unwrap(), "/api/users/");
        assert_eq!(parse("/a;b=c/@x:y/~z").unwrap(), "/a;b=c/@x:y/~z");
        assert_eq!(parse("/100%25").unwrap(), "/100%25", "a value with a `%`");
        assert_eq!(parse("/%2541").unwrap(), "/%2541", "double encoding of a harmless byte");
        assert_eq!(parse("/.well-known/x").unwrap(), "/.well-known/x");
        assert_eq!(parse("/a..b/.x/x./v1.2").unwrap(), "/a..b/.x/x./v1.2");
    }

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for raw in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/..",
            "/a/%2e%2e/b",
            "/a/%2E%2e/b",
            "/a/.%2e/b",
            "/a/%2e/b",
            "/a/..%2fb",
            "/a/..%2Fb",
            "/a/b%2F..%2Fc",
            "/a/%2F..",
            "/a/%252e%252e/b",
            "/a/%25252e%25252e/b",
            "/a/..;x/b",
            "/a/..;/b",
            "/a/.;/b",
            "/a/...",
            "/a/..%20",
            "/a/%20..",
            "/a/%2e%2e%3bjsessionid=1",
        ] {
            assert!(matches!(parse(raw), Err(UrlPathError::DotSegment { .. })), "{raw}: {:?}", parse(raw));
        }
        assert_eq!(parse("/a/%252e%252e"), Err(UrlPathError::DotSegment { depth: 2 }));
    }

    #[test]
    fn ambiguous_characters_are_refused() {
        assert_eq!(parse("/a\\b"), Err(UrlPathError::Backslash));
        assert_eq!(parse("/a%5cb"), Err(UrlPathError::Backslash));
        assert_eq!(parse("/a%255Cb"), Err(UrlPathError::Backslash));
        assert_eq!(parse("/a%00b"), Err(UrlPathError::Nul));
        assert_eq!(parse("/a%2"), Err(UrlPathError::BadEscape));
        assert_eq!(parse("/a%zz"), Err(UrlPathError::BadEscape));
        assert_eq!(parse("/a%+1"), Err(UrlPathError::BadEscape));
        assert_eq!(parse("/a b"), Err(UrlPathError::Character(' ')));
        assert_eq!(parse("/a\tb"), Err(UrlPathError::Character('\t')));
        assert_eq!(parse("/a\"b"), Err(UrlPathError::Character('"')));
        assert_eq!(parse("/a?b"), Err(UrlPathError::Character('?')));
        assert_eq!(parse("/a#b"), Err(UrlPathError::Character('#')));
        assert_eq!(parse("/é"), Err(UrlPathError::NonAscii));
        assert_eq!(parse("/a%C0%AE"), Err(UrlPathError::NotUtf8));
        assert_eq!(parse("/a%EF%BC%8F..%EF%BC%8Fb"), Err(UrlPathError::LookAlike));
        assert_eq!(parse("/%E2%80%A5"), Err(UrlPathError::LookAlike));
        assert_eq!(parse("/a//b"), Err(UrlPathError::EmptySegment));
        assert_eq!(parse("//a"), Err(UrlPathError::EmptySegment));
        assert_eq!(parse("a/b"), Err(UrlPathError::NotAbsolute));
        assert_eq!(parse(""), Err(UrlPathError::NotAbsolute));
        assert_eq!(parse("/%2525252541"), Err(UrlPathError::TooDeep));
    }

    #[test]
    fn prefixes_cover_whole_segments() {
        let covers = |grant: &str, path: &str| UrlPath::parse(grant).unwrap().covers(&UrlPath::parse(path).unwrap());
        assert!(covers("/api/users", "/api/users"));
        assert!(covers("/api/users", "/api/users/"));
        assert!(covers("/api/users", "/api/users/x/y"));
        assert!(!covers("/api/users", "/api/usersx"));
        assert!(!covers("/api/users", "/api"));
        assert!(!covers("/api/users", "/api/user"));
        assert!(covers("/api/users/", "/api/users/"));
        assert!(covers("/api/users/", "/api/users/x"));
        assert!(!covers("/api/users/", "/api/users"));
        assert!(covers("/", "/"));
        assert!(covers("/", "/anything/at/all"));
        assert!(covers("/api/permissions/%2f", "/api/permissions/%2F/user"));
        assert!(!covers("/api/permissions/%2F", "/api/permissions/%2Fx"));
        assert!(!covers("/api/users", "/api/%75sers"), "escapes are compared as written, never decoded");
    }
}
