//! The userpass auth method: users with a password and token settings, and
//! `login/:username`.
//!
//! As in Vault, usernames are case-insensitive (kept lowercased), a user
//! is created with a password and may change it (`users/:name/password`) or
//! its policies (`users/:name/policies`) alone, a read never shows the
//! password, and a failed login says only "invalid username or password",
//! whichever of the two was wrong. Passwords are kept as salted SHA-256
//! digests (Vault uses bcrypt; this server is for development) and compared
//! in constant time.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::super::response::Reply;
use super::super::{Operation, Request};
use super::{AuthOutcome, LoginGrant, TokenParams, valid_name};

/// The users of one userpass mount.
#[derive(Default)]
pub(crate) struct UserPass {
    users: BTreeMap<String, User>,
}

struct User {
    password: Digest32,
    token: TokenParams,
}

/// A salted password digest.
struct Digest32 {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl Digest32 {
    fn new(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Digest32 { salt, hash: hash(&salt, password) }
    }

    fn matches(&self, password: &str) -> bool {
        let other = hash(&self.salt, password);
        self.hash.iter().zip(other.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn hash(salt: &[u8; 16], password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    h.finalize().into()
}

/// The password field of a body, as sent (passwords are not trimmed).
fn password(body: &Map<String, Value>) -> Option<&str> {
    body.get("password").and_then(Value::as_str).filter(|p| !p.is_empty())
}

impl UserPass {
    /// Answer `auth/<mount>/<rest>`.
    pub fn handle(&mut self, rest: &str, req: &Request) -> AuthOutcome {
        if let Some(name) = rest.strip_prefix("login/") {
            return match req.op {
                Operation::Write => self.login(&name.to_lowercase(), req),
                _ => Reply::unsupported_operation().into(),
            };
        }
        if rest == "users/" && req.op == Operation::List {
            return Reply::list(self.users.keys().cloned().collect()).into();
        }
        let Some(user_path) = rest.strip_prefix("users/") else {
            return Reply::unsupported_path().into();
        };
        let (name, sub) = user_path.split_once('/').unwrap_or((user_path, ""));
        if !valid_name(name) {
            return Reply::bad_request(format!("invalid username {name:?}")).into();
        }
        let name = name.to_lowercase();
        let reply = match (sub, req.op) {
            ("", Operation::Read) => self.users.get(&name).map_or_else(Reply::not_found, User::to_json),
            ("", Operation::Write) => self.write_user(name, &req.data),
            ("", Operation::Delete) => {
                self.users.remove(&name);
                Reply::NoContent
            }
            ("password", Operation::Write) => match (self.users.get_mut(&name), password(&req.data)) {
                (None, _) => Reply::bad_request("username does not exist"),
                (Some(_), None) => Reply::bad_request("missing password"),
                (Some(user), Some(p)) => {
                    user.password = Digest32::new(p);
                    Reply::NoContent
                }
            },
            ("policies", Operation::Write) => match self.users.get_mut(&name) {
                None => Reply::bad_request("username does not exist"),
                Some(user) => {
                    let policies = req.data.get("token_policies").or_else(|| req.data.get("policies"));
                    let mut body = Map::new();
                    body.insert("token_policies".into(), policies.cloned().unwrap_or(Value::Null));
                    match user.token.update_from(&body) {
                        Ok(()) => Reply::NoContent,
                        Err(e) => Reply::bad_request(e),
                    }
                }
            },
            ("" | "password" | "policies", _) => Reply::unsupported_operation(),
            _ => Reply::unsupported_path(),
        };
        reply.into()
    }

    /// `POST users/:name`: create (a password is required), or update only
    /// the fields given.
    fn write_user(&mut self, name: String, body: &Map<String, Value>) -> Reply {
        let mut token = self.users.get(&name).map(|u| u.token.clone()).unwrap_or_default();
        if let Err(e) = token.update_from(body) {
            return Reply::bad_request(e);
        }
        match (self.users.get_mut(&name), password(body)) {
            (Some(user), p) => {
                user.token = token;
                if let Some(p) = p {
                    user.password = Digest32::new(p);
                }
            }
            (None, Some(p)) => {
                self.users.insert(name, User { password: Digest32::new(p), token });
            }
            (None, None) => return Reply::bad_request("missing password"),
        }
        Reply::NoContent
    }

    /// `POST login/:name` {password}.
    fn login(&self, name: &str, req: &Request) -> AuthOutcome {
        let Some(given) = password(&req.data) else {
            return Reply::bad_request("missing password").into();
        };
        match self.users.get(name) {
            Some(user) if user.password.matches(given) => {
                let metadata = BTreeMap::from([("username".to_owned(), name.to_owned())]);
                AuthOutcome::Login(LoginGrant { params: user.token.clone(), metadata, display_name: name.to_owned() })
            }
            // Hash anyway, so an unknown user costs what a wrong password does.
            other => {
                let _ = other.is_none() && Digest32::new(given).matches("");
                Reply::bad_request("invalid username or password").into()
            }
        }
    }
}

impl User {
    fn to_json(&self) -> Reply {
        let mut out = Map::new();
        self.token.to_json(&mut out);
        Reply::ok(Value::Object(out))
    }
}
