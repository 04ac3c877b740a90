//! The job's settings, parsed and checked, and what follows from them alone:
//! which user a rotation changes and the password policy the host generates
//! by. Kept apart from the HTTP calls so each half reads on its own.

use rotator_plugin_sdk::{CharsetRule, Context, RotateError, ValuePolicy, http, settings};
use serde::Deserialize;

/// The job's `settings` table, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    url: String,
    #[serde(default)]
    strategy: Strategy,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    usernames: Option<Vec<String>>,
    #[serde(default)]
    admin: Option<AdminSecret>,
    #[serde(default)]
    password: RawPolicy,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
enum Strategy {
    #[default]
    SingleUser,
    AlternatingUsers,
}

/// Where the administrator's credentials are: a KV secret with `username`
/// and `password` fields.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AdminSecret {
    pub mount: String,
    pub path: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    length: Option<u32>,
    #[serde(default)]
    alphabet: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    charset: String,
    min_chars: u32,
}

/// Which users the job rotates.
pub enum Users {
    Single(String),
    Alternating([String; 2]),
}

/// The settings, checked.
pub struct Job {
    /// The management API's origin, without a trailing `/`.
    pub url: String,
    pub users: Users,
    pub admin: Option<AdminSecret>,
    pub policy: ValuePolicy,
}

const DEFAULT_LENGTH: u32 = 32;

impl Job {
    /// Parse and check the job's settings; every problem is the operator's.
    pub fn load(ctx: &Context) -> Result<Self, RotateError> {
        let raw: Raw = settings(ctx)?;
        Self::check(raw).map_err(RotateError::InvalidConfig)
    }

    fn check(raw: Raw) -> Result<Self, String> {
        let url = origin(&raw.url)?;
        let users = match (raw.strategy, raw.username, raw.usernames) {
            (Strategy::SingleUser, Some(user), None) => Users::Single(user),
            (Strategy::AlternatingUsers, None, Some(users)) => match <[String; 2]>::try_from(users) {
                Ok([a, b]) if a != b => Users::Alternating([a, b]),
                _ => return Err("usernames must be two different users".into()),
            },
            (Strategy::SingleUser, ..) => return Err("single-user needs `username` (and no `usernames`)".into()),
            (Strategy::AlternatingUsers, ..) => {
                return Err("alternating-users needs `usernames` (and no `username`)".into());
            }
        };
        let all = match &users {
            Users::Single(u) => std::slice::from_ref(u),
            Users::Alternating(both) => both.as_slice(),
        };
        if let Some(bad) = all.iter().find(|u| u.is_empty() || u.chars().any(char::is_control)) {
            return Err(format!("`{}` is not a RabbitMQ user name", bad.escape_debug()));
        }
        let length = raw.password.length.unwrap_or(DEFAULT_LENGTH);
        if !(16..=1024).contains(&length) {
            return Err(format!("password.length must be between 16 and 1024, not {length}"));
        }
        let policy = ValuePolicy {
            length,
            alphabet: raw.password.alphabet.unwrap_or_default(),
            rules: raw
                .password
                .rules
                .into_iter()
                .map(|r| CharsetRule { charset: r.charset, min_chars: r.min_chars })
                .collect(),
        };
        Ok(Self { url, users, admin: raw.admin, policy })
    }

    /// The user this rotation changes: the single user, or the one the
    /// current secret does not name (the first when there is none).
    pub fn target(&self, current_user: Option<&str>) -> &str {
        match &self.users {
            Users::Single(user) => user,
            Users::Alternating([first, second]) => match current_user {
                Some(active) if active == first => second,
                _ => first,
            },
        }
    }

    /// In alternating mode, the user this rotation does not change (whose
    /// tags and permissions a missing target copies).
    pub fn other(&self, target: &str) -> Option<&str> {
        match &self.users {
            Users::Single(_) => None,
            Users::Alternating([first, second]) => Some(if target == first { second } else { first }),
        }
    }

    pub fn is_alternating(&self) -> bool {
        matches!(self.users, Users::Alternating(_))
    }
}

/// Check `url` is an `http(s)` origin ([`http::origin`]) and return it
/// without a trailing slash.
fn origin(url: &str) -> Result<String, String> {
    http::origin(url).ok_or_else(|| {
        format!("url `{}` is not an http(s) origin like `https://rabbit.internal:15672`", url.escape_debug())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(settings: serde_json::Value) -> Result<Job, String> {
        Job::check(serde_json::from_value(settings).map_err(|e| e.to_string())?)
    }

    #[test]
    fn single_user_is_the_default_and_always_targets_its_user() {
        let j = job(json!({"url": "http://127.0.0.1:15672/", "username": "app"})).unwrap();
        assert_eq!(j.url, "http://127.0.0.1:15672");
        assert!(!j.is_alternating());
        assert_eq!((j.target(None), j.target(Some("app")), j.target(Some("other"))), ("app", "app", "app"));
        assert_eq!(j.other("app"), None);
        assert_eq!((j.policy.length, j.policy.alphabet.as_str(), j.policy.rules.len()), (32, "", 0));
    }

    #[test]
    fn alternating_users_target_the_one_the_current_secret_does_not_name() {
        let j = job(json!({"url": "https://r:1", "strategy": "alternating-users", "usernames": ["a", "b"]})).unwrap();
        assert_eq!(
            (j.target(None), j.target(Some("a")), j.target(Some("b")), j.target(Some("x"))),
            ("a", "b", "a", "a")
        );
        assert_eq!((j.other("a"), j.other("b")), (Some("b"), Some("a")));
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let cases = [
            (json!({"url": "http://r"}), "single-user needs `username`"),
            (json!({"url": "http://r", "username": "a", "usernames": ["a", "b"]}), "single-user needs"),
            (json!({"url": "http://r", "strategy": "alternating-users", "usernames": ["a", "a"]}), "two different"),
            (json!({"url": "http://r", "strategy": "alternating-users", "usernames": ["a"]}), "two different"),
            (json!({"url": "http://r", "strategy": "alternating-users", "username": "a"}), "alternating-users needs"),
            (json!({"url": "http://r", "username": "a\nb"}), "not a RabbitMQ user name"),
            (json!({"url": "http://r", "username": ""}), "not a RabbitMQ user name"),
            (json!({"url": "http://r", "username": "a", "password": {"length": 8}}), "between 16 and 1024"),
            (json!({"url": "http://r/api", "username": "a"}), "not an http(s) origin"),
            (json!({"url": "http://r", "username": "a", "extra": 1}), "unknown field"),
        ];
        for (settings, want) in cases {
            let err = job(settings.clone()).err().unwrap_or_else(|| panic!("accepted {settings}"));
            assert!(err.contains(want), "{settings}: {err}");
        }
    }

    #[test]
    fn the_password_policy_is_passed_to_the_host() {
        let rules = json!([{"charset": "0123456789", "min_chars": 4}]);
        let settings = json!({"url": "http://r", "username": "a", "password": {"length": 48, "alphabet": "abc0123456789", "rules": rules}});
        let p = job(settings).unwrap().policy;
        assert_eq!((p.length, p.alphabet.as_str()), (48, "abc0123456789"));
        assert_eq!((p.rules[0].charset.as_str(), p.rules[0].min_chars), ("0123456789", 4));
    }

    #[test]
    fn origins_lose_a_trailing_slash_and_refuse_anything_more() {
        assert_eq!(origin("http://127.0.0.1:15672").unwrap(), "http://127.0.0.1:15672");
        assert_eq!(origin("https://rabbit.internal:15672/").unwrap(), "https://rabbit.internal:15672");
        for bad in [
            "ftp://x",
            "rabbit:15672",
            "http://",
            "http://a/b",
            "http://u:p@a",
            "http://a?x",
            "http://a#f",
            "http://a b",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }
}
