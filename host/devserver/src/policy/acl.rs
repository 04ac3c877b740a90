//! Capabilities and Vault's rules for which policy path applies.
//!
//! A token's policies are merged into one set of rules first: rules with the
//! same path pattern from different policies add their capabilities
//! together, and `deny` on a pattern wipes out everything else on it. Then
//! the single most specific pattern that matches the request path decides,
//! by Vault's documented priority: an exact path beats any wildcard; then a
//! later first wildcard (`+` or `*`) wins; a pattern not ending in `*` beats
//! one that does; fewer `+` segments win; longer wins; finally the
//! lexicographically larger wins. So `deny` wins on its own pattern, while a
//! more specific grant can still open a path below a denied prefix, exactly
//! as in Vault.

use std::cmp::Reverse;
use std::collections::BTreeMap;

/// One capability a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capability {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Sudo,
}

/// A set of capabilities (a bit set), possibly `deny` or `root`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Capabilities(u16);

const DENY: u16 = 1;
const ROOT: u16 = 1 << 15;
/// Display order of `names`, Vault's sorted capability names.
const NAMED: [(&str, u16); 8] = [
    ("create", 1 << 1),
    ("delete", 1 << 5),
    ("deny", DENY),
    ("list", 1 << 6),
    ("patch", 1 << 4),
    ("read", 1 << 2),
    ("sudo", 1 << 7),
    ("update", 1 << 3),
];

impl Capability {
    fn bit(self) -> u16 {
        let name = match self {
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
        };
        NAMED.iter().find(|(n, _)| *n == name).map_or(0, |(_, b)| *b)
    }
}

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    /// What the `root` policy grants.
    pub const ROOT: Capabilities = Capabilities(ROOT);

    /// One capability name as written in a policy.
    pub fn parse(name: &str) -> Option<Capabilities> {
        NAMED.iter().find(|(n, _)| *n == name).map(|(_, bit)| Capabilities(*bit))
    }

    /// The deprecated `policy = "..."` shorthand.
    pub fn legacy(name: &str) -> Option<Capabilities> {
        let names: &[&str] = match name {
            "deny" => &["deny"],
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            _ => return None,
        };
        names.iter().filter_map(|n| Capabilities::parse(n)).reduce(Capabilities::union)
    }

    /// Merge two rules on the same pattern: `deny` wipes out the rest.
    pub fn union(self, other: Capabilities) -> Capabilities {
        let merged = self.0 | other.0;
        if merged & DENY != 0 { Capabilities(DENY) } else { Capabilities(merged) }
    }

    /// Whether a request needing `cap` may go ahead.
    pub fn allows(self, cap: Capability) -> bool {
        self.0 & ROOT != 0 || (self.0 & DENY == 0 && self.0 & cap.bit() != 0)
    }

    /// Vault's answer in sys/capabilities*: sorted names, `["root"]`, or
    /// `["deny"]` for nothing.
    pub fn names(self) -> Vec<&'static str> {
        if self.0 & ROOT != 0 {
            return vec!["root"];
        }
        let names: Vec<&'static str> = NAMED.iter().filter(|(_, b)| self.0 & b != 0).map(|(n, _)| *n).collect();
        if names.is_empty() { vec!["deny"] } else { names }
    }
}

/// One `path "<pattern>" { ... }` block.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub pattern: String,
    pub caps: Capabilities,
}

/// The capabilities `rules` (from all of a token's policies) grant on `path`.
pub(crate) fn evaluate<'a>(rules: impl Iterator<Item = &'a Rule>, path: &str) -> Capabilities {
    let mut merged: BTreeMap<&str, Capabilities> = BTreeMap::new();
    for rule in rules.filter(|r| matches(&r.pattern, path)) {
        let entry = merged.entry(rule.pattern.as_str()).or_default();
        *entry = entry.union(rule.caps);
    }
    merged.into_iter().max_by_key(|(pattern, _)| priority(pattern)).map_or(Capabilities::NONE, |(_, caps)| caps)
}

/// Sort key: the greater key is the more specific pattern.
fn priority(pattern: &str) -> (usize, bool, Reverse<usize>, usize, &str) {
    let first_wildcard = pattern.find(['+', '*']).unwrap_or(usize::MAX);
    let plus_segments = pattern.split('/').filter(|s| *s == "+").count();
    (first_wildcard, !pattern.ends_with('*'), Reverse(plus_segments), pattern.len(), pattern)
}

/// Whether `pattern` covers `path`: exact, a trailing `*` glob, and `+` for
/// exactly one segment (Vault's segment-wildcard matching).
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let (body, glob) = match pattern.strip_suffix('*') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    if !body.split('/').any(|s| s == "+") {
        return if glob { path.starts_with(body) } else { path == body };
    }
    let segments: Vec<&str> = body.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    if (glob && parts.len() < segments.len()) || (!glob && parts.len() != segments.len()) {
        return false;
    }
    let last = segments.len() - 1;
    segments.iter().zip(&parts).enumerate().all(|(i, (segment, part))| match *segment {
        "+" => true,
        _ if glob && i == last => part.starts_with(segment),
        _ => segment == part,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, caps: &[&str]) -> Rule {
        let caps = caps.iter().map(|c| Capabilities::parse(c).unwrap()).fold(Capabilities::NONE, Capabilities::union);
        Rule { pattern: pattern.into(), caps }
    }

    #[test]
    fn devserver_acl_patterns_match_like_vault() {
        assert!(matches("secret/data/app", "secret/data/app"));
        assert!(!matches("secret/data/app", "secret/data/app/x"));
        assert!(matches("secret/data/*", "secret/data/app/x"));
        assert!(matches("secret/data/ap*", "secret/data/app"));
        assert!(matches("secret/+/app", "secret/data/app"));
        assert!(!matches("secret/+/app", "secret/data/x/app"));
        assert!(matches("secret/+/team-*", "secret/data/team-a/db"));
        assert!(!matches("secret/+/team-*", "secret/data/other"));
        assert!(matches("+/data/*", "kv/data/x"));
    }

    #[test]
    fn devserver_acl_most_specific_wins_and_deny_wins_on_its_pattern() {
        let rules = [
            rule("secret/*", &["read", "list"]),
            rule("secret/data/app/*", &["create", "update"]),
            rule("secret/data/app/locked", &["deny"]),
            rule("secret/data/app/locked", &["read"]),
            rule("secret/+/shared", &["read"]),
        ];
        let caps = |path| evaluate(rules.iter(), path);
        assert!(caps("secret/data/other").allows(Capability::Read));
        assert!(!caps("secret/data/other").allows(Capability::Update));
        assert!(caps("secret/data/app/db").allows(Capability::Update));
        assert!(!caps("secret/data/app/db").allows(Capability::Read), "the longer prefix decides alone");
        assert_eq!(caps("secret/data/app/locked").names(), ["deny"]);
        assert_eq!(caps("secret/data/shared").names(), ["read"], "'+' beats the earlier '*'");
        assert_eq!(caps("nothing/here").names(), ["deny"]);
        assert_eq!(Capabilities::ROOT.names(), ["root"]);
        assert!(Capabilities::ROOT.allows(Capability::Sudo));
    }
}
