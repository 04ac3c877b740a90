//! New credentials: passwords and usernames in Vault's style.
//!
//! Passwords follow Vault's default password policy (20 characters of
//! letters, digits and `-`, with at least one lower-case letter, one
//! upper-case letter, one digit and one dash), generated like Vault's
//! `StringGenerator`: draw, and draw again until every rule holds. Usernames
//! follow the PostgreSQL plugin's default template,
//! `v-<display name, 8>-<role, 8>-<20 random>-<unix time>`, cut to
//! PostgreSQL's 63-character identifier limit.

use rand::Rng;
use zeroize::Zeroizing;

/// Vault's default password charset.
const PASSWORD_CHARSET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
/// The default policy's length.
const PASSWORD_LENGTH: usize = 20;
/// What `random 20` draws from in Vault's username templates.
const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_USERNAME: usize = 63;

/// A password under Vault's default policy.
pub(crate) fn password() -> Zeroizing<String> {
    let mut rng = rand::rng();
    loop {
        let candidate: Zeroizing<String> = Zeroizing::new(
            (0..PASSWORD_LENGTH)
                .map(|_| PASSWORD_CHARSET[rng.random_range(0..PASSWORD_CHARSET.len())] as char)
                .collect(),
        );
        let has = |pred: fn(&char) -> bool| candidate.chars().any(|c| pred(&c));
        if has(char::is_ascii_lowercase)
            && has(char::is_ascii_uppercase)
            && has(char::is_ascii_digit)
            && has(|c| *c == '-')
        {
            return candidate;
        }
    }
}

/// A username for a dynamic credential, as the PostgreSQL plugin's default
/// `username_template` makes it. The display name is reduced to characters
/// that are safe inside a quoted identifier and a string literal.
pub(crate) fn username(display_name: &str, role: &str, unix_time: i64) -> String {
    let safe = |s: &str| -> String {
        s.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(8).collect()
    };
    let mut rng = rand::rng();
    let random: String = (0..20).map(|_| ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char).collect();
    let mut name = format!("v-{}-{}-{random}-{unix_time}", safe(display_name), safe(role));
    name.truncate(MAX_USERNAME);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_db_passwords_follow_the_default_policy() {
        for _ in 0..200 {
            let p = password();
            assert_eq!(p.len(), 20);
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()) && p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()) && p.contains('-'));
        }
        assert_ne!(*password(), *password());
    }

    #[test]
    fn devserver_db_usernames_follow_the_default_template() {
        let name = username("root", "readonly", 1_602_537_260);
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 5, "{name}");
        assert_eq!((parts[0], parts[1], parts[2], parts[4]), ("v", "root", "readonly", "1602537260"));
        assert_eq!(parts[3].len(), 20);
        let long = username("token-with-a-long-name", "a-very-long-role-name", 1_602_537_260);
        assert!(long.starts_with("v-token-wi-a-very-l-"), "{long}");
        assert!(long.len() <= 63);
        assert!(username("we\"ird'", "r", 1).starts_with("v-weird-r-"));
    }
}
