//! Statement text: its first keyword (for audit and routing) and, for
//! utility statements, client-side parameter substitution.
//!
//! PostgreSQL binds parameters only in statements it can prepare (SELECT,
//! INSERT, UPDATE, DELETE, MERGE, VALUES and the WITH/TABLE forms). Utility
//! statements such as `ALTER ROLE x PASSWORD $1` take literals, so for them
//! each `$n` placeholder is replaced by a quoted literal here. The lexer
//! follows PostgreSQL's: placeholders inside string constants, quoted
//! identifiers, dollar-quoted strings and comments are left alone, and `$`
//! inside an identifier (`a$1`) is part of it. Text becomes an escape string
//! constant `E'…'` with `\` and `'` doubled, which the server reads the same
//! way whatever `standard_conforming_strings` says, so no value can end its
//! literal early. A substituted statement must be a single statement, so an
//! audit line's keyword describes everything that ran.

use super::SqlValue;

/// Statements PostgreSQL can prepare, by first keyword.
const PREPARABLE: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "WITH", "TABLE"];

/// The longest keyword kept for audit.
const MAX_KEYWORD: usize = 32;

/// The statement's first keyword in upper case (`ALTER`, `SELECT`), after
/// leading white space and comments; empty if it starts with anything else.
pub fn first_keyword(statement: &str) -> String {
    let rest = skip_blank(statement);
    rest.chars().take_while(|ch| ch.is_ascii_alphabetic()).take(MAX_KEYWORD).collect::<String>().to_ascii_uppercase()
}

/// Can the server bind parameters in a statement starting with `keyword`?
pub fn is_preparable(keyword: &str) -> bool {
    PREPARABLE.contains(&keyword)
}

/// Skip white space and comments at the start of `s`.
fn skip_blank(mut s: &str) -> &str {
    loop {
        let trimmed = s.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            s = rest.find('\n').map_or("", |i| &rest[i..]);
        } else if trimmed.starts_with("/*") {
            s = &trimmed[block_comment_end(trimmed.as_bytes(), 0)..];
        } else {
            return trimmed;
        }
    }
}

/// Why parameters could not be substituted. Names the placeholder, never a
/// value (the values are typically the new password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    #[error("the statement uses ${index} but {given} parameter(s) were given")]
    NoSuchParameter { index: usize, given: usize },
    #[error("parameter ${0}: text contains a NUL character, which PostgreSQL cannot store")]
    NulInText(usize),
    #[error("a statement with substituted parameters must be a single statement")]
    NotSingle,
}

/// Replace every `$n` outside quotes and comments with `params[n-1]` as a
/// literal. Errors name the placeholder, never a value.
pub fn substitute(statement: &str, params: &[SqlValue]) -> Result<String, SubstituteError> {
    let b = statement.as_bytes();
    let mut out = String::with_capacity(statement.len() + 16);
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    let mut ended = false;
    while i < b.len() {
        let start = i;
        i = match b[i] {
            b'\'' => string_end(b, i, is_escape_prefix(b, i)),
            b'"' => quoted_end(b, i, b'"'),
            b'-' if b.get(i + 1) == Some(&b'-') => b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| i + n),
            b'/' if b.get(i + 1) == Some(&b'*') => block_comment_end(b, i),
            b';' => {
                ended = true;
                i + 1
            }
            b'$' if !follows_identifier(b, i) => match dollar(b, i) {
                Dollar::Placeholder { index, end } => {
                    let value = index
                        .checked_sub(1)
                        .and_then(|n| params.get(n))
                        .ok_or(SubstituteError::NoSuchParameter { index, given: params.len() })?;
                    out.push_str(&statement[copied..i]);
                    literal(&mut out, value).map_err(|NulInText| SubstituteError::NulInText(index))?;
                    copied = end;
                    end
                }
                Dollar::Quote { end } => end,
                Dollar::Plain => i + 1,
            },
            c if c.is_ascii_whitespace() => i + 1,
            _ => {
                // An identifier or keyword: consume it whole, `$` included.
                let mut j = i + 1;
                while j < b.len() && is_ident_byte(b[j]) && is_ident_byte(b[i]) {
                    j += 1;
                }
                j
            }
        };
        let token = &b[start..i.min(b.len())];
        let blank = token.iter().all(u8::is_ascii_whitespace) || token.starts_with(b"--") || token.starts_with(b"/*");
        if ended && !blank && token != b";" {
            return Err(SubstituteError::NotSingle);
        }
    }
    out.push_str(&statement[copied..]);
    Ok(out)
}

/// Text holding a NUL, which no PostgreSQL literal can carry.
struct NulInText;

/// Append `value` as an SQL literal.
fn literal(out: &mut String, value: &SqlValue) -> Result<(), NulInText> {
    match value {
        SqlValue::Null => out.push_str("NULL"),
        SqlValue::Boolean(true) => out.push_str("TRUE"),
        SqlValue::Boolean(false) => out.push_str("FALSE"),
        // A leading space keeps `-$1` from becoming a `--` comment.
        SqlValue::Int(n) => out.push_str(&format!(" {n}")),
        SqlValue::Float(f) if f.is_nan() => out.push_str("'NaN'::float8"),
        SqlValue::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "'Infinity'::float8" } else { "'-Infinity'::float8" })
        }
        SqlValue::Float(f) => out.push_str(&format!(" {f:?}")),
        SqlValue::Text(s) => {
            if s.contains('\0') {
                return Err(NulInText);
            }
            out.push_str(" E'");
            for ch in s.chars() {
                match ch {
                    '\'' => out.push_str("''"),
                    '\\' => out.push_str("\\\\"),
                    _ => out.push(ch),
                }
            }
            out.push('\'');
        }
    }
    Ok(())
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Is the `$` at `i` inside an identifier (`a$1`)?
fn follows_identifier(b: &[u8], i: usize) -> bool {
    i > 0 && is_ident_byte(b[i - 1])
}

/// Is the quote at `i` the start of an escape string (`E'…'`, not `xe'…'`)?
fn is_escape_prefix(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1] == b'e' || b[i - 1] == b'E') && (i < 2 || !is_ident_byte(b[i - 2]))
}

/// End (exclusive) of the string constant opening at `i`. `''` is a quote;
/// in an escape string, `\` escapes the next character too.
fn string_end(b: &[u8], i: usize, escapes: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if escapes => j += 2,
            b'\'' if b.get(j + 1) == Some(&b'\'') => j += 2,
            b'\'' => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// End of a quoted identifier opening at `i` (doubled quotes inside).
fn quoted_end(b: &[u8], i: usize, quote: u8) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// End of a (nested) block comment opening at `i`.
fn block_comment_end(b: &[u8], i: usize) -> usize {
    let (mut depth, mut j) = (0usize, i);
    while j + 1 < b.len() {
        match (b[j], b[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j;
                }
            }
            _ => j += 1,
        }
    }
    b.len()
}

/// What a `$` that does not continue an identifier starts.
enum Dollar {
    /// `$n`: placeholder `n`, ending before `end`.
    Placeholder { index: usize, end: usize },
    /// `$tag$ … $tag$`: a dollar-quoted string, ending before `end`.
    Quote { end: usize },
    /// Anything else.
    Plain,
}

fn dollar(b: &[u8], i: usize) -> Dollar {
    let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 {
        let text = std::str::from_utf8(&b[i + 1..i + 1 + digits]).unwrap_or("0");
        return Dollar::Placeholder { index: text.parse().unwrap_or(usize::MAX), end: i + 1 + digits };
    }
    let tag_len = b[i + 1..]
        .iter()
        .enumerate()
        .take_while(|(n, c)| c.is_ascii_alphabetic() || **c == b'_' || **c >= 0x80 || (*n > 0 && c.is_ascii_digit()))
        .count();
    if b.get(i + 1 + tag_len) != Some(&b'$') {
        return Dollar::Plain;
    }
    let tag = &b[i..i + tag_len + 2];
    let body = i + tag.len();
    match b[body..].windows(tag.len()).position(|w| w == tag) {
        Some(n) => Dollar::Quote { end: body + n + tag.len() },
        None => Dollar::Quote { end: b.len() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.into())
    }

    #[test]
    fn keywords_skip_blank_and_comments() {
        assert_eq!(first_keyword("  -- note\n/* a /* nested */ one */ alter role x"), "ALTER");
        assert_eq!(first_keyword("select 1"), "SELECT");
        assert_eq!(first_keyword("(select 1)"), "");
        assert!(is_preparable("WITH") && !is_preparable("ALTER"));
    }

    #[test]
    fn text_becomes_an_escape_string_that_cannot_end_early() {
        let evil = r"x\'; DROP ROLE admin; --";
        let sql = substitute(r#"ALTER ROLE "app" PASSWORD $1"#, &[text(evil)]).unwrap();
        assert_eq!(sql, r#"ALTER ROLE "app" PASSWORD  E'x\\''; DROP ROLE admin; --'"#);
    }

    #[test]
    fn placeholders_in_quotes_comments_and_identifiers_are_left_alone() {
        let sql = "SET x = '$1 it''s' || \"col$1\" || a$1 || $$ $1 $$ || $t$ $2 $t$ -- $1\n /* $1 */ || $2";
        let out = substitute(sql, &[SqlValue::Int(-5), SqlValue::Boolean(true)]).unwrap();
        assert_eq!(out, "SET x = '$1 it''s' || \"col$1\" || a$1 || $$ $1 $$ || $t$ $2 $t$ -- $1\n /* $1 */ || TRUE");
        let escaped = substitute(r"SET x = E'\' $1' || $1", &[SqlValue::Int(7)]).unwrap();
        assert_eq!(escaped, r"SET x = E'\' $1' ||  7");
    }

    #[test]
    fn numbers_nulls_and_floats() {
        let out = substitute(
            "SELECT -$1, $2, $3, $4",
            &[SqlValue::Int(-1), SqlValue::Null, SqlValue::Float(0.5), SqlValue::Float(f64::NAN)],
        )
        .unwrap();
        assert_eq!(out, "SELECT - -1, NULL,  0.5, 'NaN'::float8");
    }

    #[test]
    fn bad_placeholders_and_second_statements_are_refused_without_values() {
        let err = substitute("ALTER ROLE x PASSWORD $2", &[text("hunter22")]).unwrap_err().to_string();
        assert!(err.contains("$2") && !err.contains("hunter22"), "{err}");
        assert!(substitute("ALTER ROLE x PASSWORD $0", &[text("pw")]).is_err());
        let err = substitute("ALTER ROLE x PASSWORD $1; DROP ROLE y", &[text("pw")]).unwrap_err().to_string();
        assert!(err.contains("single statement"), "{err}");
        assert!(substitute("ALTER ROLE x PASSWORD $1; -- done\n", &[text("pw")]).is_ok());
        let err = substitute("ALTER ROLE x PASSWORD $1", &[text("a\0b")]).unwrap_err().to_string();
        assert!(err.contains("NUL"), "{err}");
    }
}
