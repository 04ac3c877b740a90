//! Vault API paths in one canonical form, parsed once.
//!
//! A path a plugin (or an API caller) names is checked against grants and
//! then turned into a URL. If the check and the URL builder each read the
//! raw text their own way, they disagree: `secret/data/allowed/%2e%2e/..`
//! matched a grant as text while the HTTP stack resolved it to somewhere
//! else entirely. So a raw path is parsed exactly once into a
//! [`VaultPath`]: non-empty segments, none of them `.` or `..`, and no
//! character whose meaning differs between a grant, a URL and a server
//! (`%`, `?`, `#`, `\`, control characters, white space that URL parsers
//! trim from a segment's ends). Everything ambiguous is
//! refused with a [`PathError`] naming why; nothing is "cleaned up". Grants
//! are matched against the canonical text ([`VaultPath::as_str`]) and the
//! Vault client builds its URL from the canonical segments
//! ([`VaultPath::segments`]), so a server decoding the URL sees exactly the
//! text the grant was matched against.
//!
//! The only forgiveness: one leading and one trailing `/` are dropped, so
//! `/secret/x/` and `secret/x` are the same path (they always were, in both
//! grants and Vault). This module depends on nothing else in the crate, so
//! both the Vault client and the plugin sandbox use it without a loop.

use std::fmt;

/// The longest raw path accepted, in bytes. Vault has no such limit of its
/// own, but nothing legitimate comes near it, and every error quotes a
/// bounded excerpt anyway.
pub const MAX_PATH_BYTES: usize = 4096;

/// How much of a refused path an error message quotes.
const SHOWN_CHARS: usize = 120;

/// A Vault API path (what follows `/v1/`) in canonical form: one or more
/// segments separated by single `/`, no leading or trailing `/`, no `.` or
/// `..` segment, no `%`, `?`, `#`, `\` or control character, and no
/// segment that starts or ends with white space.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultPath(String);

/// Why a raw path was refused. Each message quotes a bounded, escaped
/// excerpt of the path, never more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing (or only `/`) was given.
    #[error("the path is empty")]
    Empty,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("the path is {0} bytes long; at most {MAX_PATH_BYTES} are accepted")]
    TooLong(usize),
    /// `http://…`, `file:…`: a path is relative to Vault's `/v1/`.
    #[error("`{0}` is an absolute URL; name a path relative to Vault's /v1/")]
    AbsoluteUrl(String),
    /// `a//b`, or more than one leading or trailing `/`.
    #[error("`{0}` has an empty segment (`//`)")]
    EmptySegment(String),
    /// `a/./b`, `a/../b`: a server would resolve it to another path.
    #[error("`{0}` has a `.` or `..` segment")]
    DotSegment(String),
    /// `%2e`, `%2F`, `%25`, …: the text means one path to a grant and
    /// another to a server that decodes it.
    #[error("`{path}` holds a percent-encoded {what}; paths are plain text and the host encodes them")]
    Encoded { path: String, what: String },
    /// A `%` that starts no escape: still ambiguous (is it meant encoded?).
    #[error("`{0}` holds a `%`; paths are plain text and the host encodes them")]
    Percent(String),
    /// `?`, `#`, `\`, a control character, or white space at either end
    /// of a segment.
    #[error("`{path}` holds {what}")]
    Character { path: String, what: &'static str },
}

impl VaultPath {
    /// Parse `raw` into its canonical form, or say why it is ambiguous.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(raw.len()));
        }
        if is_absolute_url(raw) {
            return Err(PathError::AbsoluteUrl(shown(raw)));
        }
        let trimmed = raw.strip_prefix('/').unwrap_or(raw);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(PathError::Empty);
        }
        check_characters(raw, trimmed)?;
        for segment in trimmed.split('/') {
            match segment {
                "" => return Err(PathError::EmptySegment(shown(raw))),
                "." | ".." => return Err(PathError::DotSegment(shown(raw))),
                s if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) => {
                    let what = "white space at the start or end of a segment, which URL parsers and people trim";
                    return Err(PathError::Character { path: shown(raw), what });
                }
                _ => {}
            }
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The canonical text: what grants are matched against.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order: what the URL is built from.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// This path followed by `rest` (both canonical, so the result is too).
    pub fn join(&self, rest: &VaultPath) -> VaultPath {
        VaultPath(format!("{}/{}", self.0, rest.0))
    }

    /// This path followed by one fixed segment the host names itself
    /// (`data`, `metadata`, …).
    ///
    /// # Panics
    /// If `segment` is not one canonical segment: that is a bug in the
    /// caller, never input.
    pub fn child(&self, segment: &'static str) -> VaultPath {
        assert!(!segment.contains('/'), "`{segment}` is one segment");
        self.join(&VaultPath::parse(segment).expect("a fixed segment is canonical"))
    }
}

impl fmt::Display for VaultPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VaultPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultPath({:?})", self.0)
    }
}

impl std::str::FromStr for VaultPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, PathError> {
        Self::parse(s)
    }
}

/// Anything a Vault path can be given as: canonical already, or text the
/// host parses (host-internal callers write `"sys/health"` and alike).
pub trait AsVaultPath {
    /// The canonical path, or why the text is refused.
    fn to_vault_path(&self) -> Result<VaultPath, PathError>;
}

impl AsVaultPath for VaultPath {
    fn to_vault_path(&self) -> Result<VaultPath, PathError> {
        Ok(self.clone())
    }
}

impl AsVaultPath for str {
    fn to_vault_path(&self) -> Result<VaultPath, PathError> {
        VaultPath::parse(self)
    }
}

impl AsVaultPath for String {
    fn to_vault_path(&self) -> Result<VaultPath, PathError> {
        VaultPath::parse(self)
    }
}

impl<T: AsVaultPath + ?Sized> AsVaultPath for &T {
    fn to_vault_path(&self) -> Result<VaultPath, PathError> {
        (**self).to_vault_path()
    }
}

/// `scheme:` before the first `/` (RFC 3986: a letter, then letters, digits,
/// `+`, `-`, `.`).
fn is_absolute_url(raw: &str) -> bool {
    let first = raw.split('/').next().unwrap_or_default();
    let Some((scheme, _)) = first.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn check_characters(raw: &str, trimmed: &str) -> Result<(), PathError> {
    let bytes = trimmed.as_bytes();
    for (i, c) in trimmed.char_indices() {
        let what = match c {
            '?' => "a `?`, which would start a query string",
            '#' => "a `#`, which would start a fragment",
            '\\' => "a `\\`, which some servers read as `/`",
            c if c.is_control() => "a control character",
            '%' => {
                let escape = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                return Err(match escape.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => PathError::Encoded { path: shown(raw), what: encoded_name(b) },
                    None => PathError::Percent(shown(raw)),
                });
            }
            _ => continue,
        };
        return Err(PathError::Character { path: shown(raw), what });
    }
    Ok(())
}

/// What a percent-escape stands for, in words.
fn encoded_name(byte: u8) -> String {
    match byte {
        b'/' => "`/` (%2F)".into(),
        b'.' => "`.` (%2E)".into(),
        b'%' => "`%` (%25)".into(),
        b'\\' => "`\\` (%5C)".into(),
        b'?' => "`?` (%3F)".into(),
        b'#' => "`#` (%23)".into(),
        b => format!("byte (%{b:02X})"),
    }
}

/// A bounded, escaped excerpt of a refused path for an error message: a
/// hostile path may be megabytes long or hold terminal escapes.
pub fn shown(raw: &str) -> String {
    let mut out: String = raw.chars().take(SHOWN_CHARS).flat_map(char::escape_debug).collect();
    if raw.chars().nth(SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
