//! A parser for the part of HCL that Vault ACL policies use.
//!
//! Clients send policies as HCL text: `path "secret/data/*" { capabilities
//! = ["read"] }`, with `#`, `//` and `/* */` comments. Only `path` blocks
//! mean anything to the dev server; inside them `capabilities` (or the
//! legacy `policy = "read"`) gives the rule, and the other keys Vault knows
//! (`allowed_parameters`, `min_wrapping_ttl`, ...) are parsed and ignored.
//! Unknown keys are errors, as in Vault, so a typo is not silently a
//! policy that grants nothing. Vault's JSON form (`{"path": {...}}`) is
//! accepted too.

use serde_json::Value as Json;

use super::acl::{Capabilities, Rule};

/// Keys a path block may hold besides `capabilities` and `policy`.
const IGNORED_KEYS: [&str; 8] = [
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

/// The rules of one policy document.
pub(crate) fn parse_policy(text: &str) -> Result<Vec<Rule>, String> {
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, pos: 0 };
    let mut rules = Vec::new();
    while let Some((token, line)) = parser.peek() {
        let Token::Ident(key) = token else {
            return Err(format!("unexpected {} on line {line}", token.describe()));
        };
        let key = key.clone();
        parser.pos += 1;
        if key != "path" {
            return Err(format!("invalid key {key:?} on line {line}"));
        }
        let pattern = match parser.next() {
            Some((Token::Str(s), _)) => s,
            _ => return Err(format!("path on line {line} needs a quoted path")),
        };
        let body = parser.object()?;
        rules.push(rule_from_block(pattern, &body)?);
    }
    Ok(rules)
}

/// Vault's JSON policy form: `{"path": {"<pattern>": {"capabilities": [...]}}}`.
fn parse_json(text: &str) -> Result<Vec<Rule>, String> {
    let doc: Json = serde_json::from_str(text).map_err(|e| format!("invalid JSON policy: {e}"))?;
    let Some(paths) = doc.get("path").and_then(Json::as_object) else {
        return Err("JSON policy needs a \"path\" object".into());
    };
    paths
        .iter()
        .map(|(pattern, block)| {
            let body: Vec<(String, Value)> = block
                .as_object()
                .ok_or_else(|| format!("path {pattern:?} must be an object"))?
                .iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect();
            rule_from_block(pattern.clone(), &body)
        })
        .collect()
}

fn rule_from_block(pattern: String, body: &[(String, Value)]) -> Result<Rule, String> {
    let mut caps = Capabilities::NONE;
    for (key, value) in body {
        match key.as_str() {
            "capabilities" => {
                let Value::List(items) = value else {
                    return Err(format!("path {pattern:?}: capabilities must be a list"));
                };
                for item in items {
                    let Value::Str(name) = item else {
                        return Err(format!("path {pattern:?}: capabilities must be strings"));
                    };
                    caps = caps.union(
                        Capabilities::parse(name)
                            .ok_or_else(|| format!("path {pattern:?}: invalid capability {name:?}"))?,
                    );
                }
            }
            "policy" => {
                let legacy = match value {
                    Value::Str(s) => Capabilities::legacy(s),
                    _ => None,
                };
                caps = caps.union(legacy.ok_or_else(|| format!("path {pattern:?}: invalid policy value"))?);
            }
            k if IGNORED_KEYS.contains(&k) => {}
            other => return Err(format!("path {pattern:?}: invalid key {other:?}")),
        }
    }
    Ok(Rule { pattern, caps })
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number(String),
    Punct(char),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("identifier {s:?}"),
            Token::Str(s) => format!("string {s:?}"),
            Token::Number(n) => format!("number {n}"),
            Token::Punct(c) => format!("{c:?}"),
        }
    }
}

/// A parsed HCL value (only kept long enough to check it).
#[derive(Debug)]
enum Value {
    Str(String),
    Other,
    List(Vec<Value>),
    Object,
}

impl Value {
    fn from_json(v: &Json) -> Value {
        match v {
            Json::String(s) => Value::Str(s.clone()),
            Json::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            Json::Object(_) => Value::Object,
            _ => Value::Other,
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => i = skip_line(&chars, i),
            '/' if chars.get(i + 1) == Some(&'/') => i = skip_line(&chars, i),
            '/' if chars.get(i + 1) == Some(&'*') => {
                let start = line;
                i += 2;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated comment starting on line {start}")),
                        Some('*') if chars.get(i + 1) == Some(&'/') => break,
                        Some('\n') => line += 1,
                        _ => {}
                    }
                    i += 1;
                }
                i += 2;
            }
            '"' => {
                let (s, next) = read_string(&chars, i + 1, line)?;
                out.push((Token::Str(s), line));
                i = next;
            }
            '{' | '}' | '[' | ']' | '=' | ',' | ':' => {
                out.push((Token::Punct(c), line));
                i += 1;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-')) {
                    i += 1;
                }
                out.push((Token::Number(chars[start..i].iter().collect()), line));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.')) {
                    i += 1;
                }
                out.push((Token::Ident(chars[start..i].iter().collect()), line));
            }
            other => return Err(format!("illegal char {other:?} on line {line}")),
        }
    }
    Ok(out)
}

fn skip_line(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '\n' {
        i += 1;
    }
    i
}

fn read_string(chars: &[char], mut i: usize, line: usize) -> Result<(String, usize), String> {
    let mut s = String::new();
    loop {
        match chars.get(i) {
            None | Some('\n') => return Err(format!("unterminated string on line {line}")),
            Some('"') => return Ok((s, i + 1)),
            Some('\\') => {
                let escaped = match chars.get(i + 1) {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some(&c @ ('"' | '\\' | '/')) => c,
                    _ => return Err(format!("invalid escape in string on line {line}")),
                };
                s.push(escaped);
                i += 2;
            }
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<(&Token, usize)> {
        self.tokens.get(self.pos).map(|(t, l)| (t, *l))
    }

    fn next(&mut self) -> Option<(Token, usize)> {
        let item = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        item
    }

    fn last_line(&self) -> usize {
        self.tokens.last().map_or(1, |(_, l)| *l)
    }

    /// `{ key = value ... }` or `{ key "label" { ... } ... }`.
    fn object(&mut self) -> Result<Vec<(String, Value)>, String> {
        match self.next() {
            Some((Token::Punct('{'), _)) => {}
            Some((t, line)) => return Err(format!("expected '{{' on line {line}, found {}", t.describe())),
            None => return Err(format!("expected '{{' after line {}", self.last_line())),
        }
        let mut entries = Vec::new();
        loop {
            let (key, line) = match self.next() {
                Some((Token::Punct('}'), _)) => return Ok(entries),
                Some((Token::Punct(','), _)) => continue,
                Some((Token::Ident(k) | Token::Str(k), line)) => (k, line),
                Some((t, line)) => return Err(format!("unexpected {} on line {line}", t.describe())),
                None => return Err(format!("unclosed '{{' at end of input (line {})", self.last_line())),
            };
            let value = match self.peek() {
                Some((Token::Punct('=' | ':'), _)) => {
                    self.pos += 1;
                    self.value()?
                }
                Some((Token::Punct('{'), _)) => {
                    self.object()?;
                    Value::Object
                }
                Some((Token::Str(_), _)) => {
                    self.pos += 1;
                    self.object()?;
                    Value::Object
                }
                _ => return Err(format!("expected '=' after {key:?} on line {line}")),
            };
            entries.push((key, value));
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some((Token::Punct('{'), _)) => {
                self.object()?;
                return Ok(Value::Object);
            }
            Some((Token::Punct('['), _)) => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some((Token::Punct(']'), _)) => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        Some((Token::Punct(','), _)) => self.pos += 1,
                        Some(_) => items.push(self.value()?),
                        None => return Err("unclosed '[' at end of input".into()),
                    }
                }
            }
            _ => {}
        }
        match self.next() {
            Some((Token::Str(s), _)) => Ok(Value::Str(s)),
            Some((Token::Number(_) | Token::Ident(_), _)) => Ok(Value::Other),
            Some((t, line)) => Err(format!("unexpected {} on line {line}", t.describe())),
            None => Err("expected a value at end of input".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_hcl_policies_parse_with_comments() {
        let text = r#"
            # read the app's secrets
            path "secret/data/app/*" {
              capabilities = ["read", "list"]   // trailing comment
            }
            /* block
               comment */
            path "secret/data/app/locked" { capabilities = ["deny"] }
            path "auth/token/create" {
              capabilities = ["update"]
              allowed_parameters = { "ttl" = [] , "policies" = ["a", "b"] }
              min_wrapping_ttl = "1s"
            }
            path "secret/+/legacy" { policy = "write" }
        "#;
        let rules = parse_policy(text).unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].pattern, "secret/data/app/*");
        assert_eq!(rules[0].caps.names(), ["list", "read"]);
        assert_eq!(rules[1].caps.names(), ["deny"]);
        assert_eq!(rules[3].caps.names(), ["create", "delete", "list", "read", "update"]);
    }

    #[test]
    fn devserver_hcl_errors_name_the_problem() {
        assert!(parse_policy(r#"path "a" { capabilities = ["reed"] }"#).unwrap_err().contains("invalid capability"));
        assert!(parse_policy(r#"pth "a" { }"#).unwrap_err().contains("invalid key \"pth\""));
        assert!(parse_policy(r#"path "a" { capabilities = ["read"] "#).is_err());
        assert!(parse_policy("path \"a { }").is_err());
        let json = r#"{"path": {"secret/*": {"capabilities": ["read"]}}}"#;
        assert_eq!(parse_policy(json).unwrap()[0].caps.names(), ["read"]);
    }
}
