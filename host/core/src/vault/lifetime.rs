//! Keeping rotator's own token alive, the way Vault Agent's lifetime watcher
//! does, without its known failures.
//!
//! Timing ([`RenewalTiming`]): a grace period of 10 % of the TTL plus a random 0–10 %
//! more is drawn per token; the watcher sleeps 2/3 of the remaining TTL plus
//! 1/3 of the grace, then renews (≈70 % of the TTL, spread across replicas).
//! When the remaining TTL after a renewal is inside the grace (the max TTL is
//! near) or renewal is denied, it logs in again instead, if the auth method
//! can. Failures back off 10 s → 5 min, jittered, never past expiry. A policy
//! that denies `renew-self` is remembered, so it costs one request per token
//! lifetime, not a flood (hashicorp/vault#22575).
//!
//! A token that can neither be extended nor replaced by a login (the token
//! auth method at its max TTL, or denied renewal) is reported once, loudly,
//! with the time it expires; the watcher then retries every
//! `min(5 min, half the time left)`, and a token file is read again before
//! each retry so an operator can drop in a new token. Once the token has
//! expired only a new token can help, so renewal stops being tried.
//!
//! The loop talks to Vault through [`TokenApi`], so its timing can be tested
//! with tokio's paused clock; [`ClientTokenApi`] is the real implementation.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::{AuthMethod, TokenLease};
use super::{Backoff, VaultClient, VaultError};

/// The Vault calls the watcher makes.
pub trait TokenApi: Send + Sync + 'static {
    /// Whether [`login`](Self::login) can ever give a new token.
    fn can_login(&self) -> bool;
    fn renew_self(&self) -> impl Future<Output = Result<TokenLease, VaultError>> + Send;
    /// Log in afresh; `Ok(None)` if the auth method cannot.
    fn login(&self) -> impl Future<Output = Result<Option<TokenLease>, VaultError>> + Send;
    /// Whether [`reload`](Self::reload) can ever find a new token.
    fn can_reload(&self) -> bool {
        false
    }
    /// Pick up a token supplied from outside (a token file), if a new one
    /// is there; `Ok(None)` if not.
    fn reload(&self) -> impl Future<Output = Result<Option<TokenLease>, VaultError>> + Send {
        async { Ok(None) }
    }
}

/// [`TokenApi`] over a real client and auth method.
pub struct ClientTokenApi {
    pub client: VaultClient,
    pub method: AuthMethod,
    pub base_dir: std::path::PathBuf,
}

impl TokenApi for ClientTokenApi {
    fn can_login(&self) -> bool {
        self.method.can_login()
    }
    async fn renew_self(&self) -> Result<TokenLease, VaultError> {
        self.client.renew_self(None).await
    }
    async fn login(&self) -> Result<Option<TokenLease>, VaultError> {
        self.method.login(&self.client, &self.base_dir).await
    }
    fn can_reload(&self) -> bool {
        self.method.can_reload()
    }
    async fn reload(&self) -> Result<Option<TokenLease>, VaultError> {
        self.method.reload_token(&self.client, &self.base_dir).await
    }
}

/// What the watcher is doing, for the API and the renewal budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStatus {
    /// When the token expires; `None` if it never does.
    pub expires_at: Option<Instant>,
    pub renewable: bool,
    /// The next renewal or login.
    pub next_action_at: Option<Instant>,
    pub consecutive_failures: u32,
    pub renewals: u64,
    pub logins: u64,
    /// New tokens picked up from the token file.
    pub reloads: u64,
    /// Set once Vault refused `renew-self`; the watcher then only logs in.
    pub renew_denied: bool,
    /// The token can no longer be extended and the auth method cannot log
    /// in: it expires at `expires_at` unless the operator supplies a new one.
    pub stranded: bool,
}

impl TokenStatus {
    /// How long Vault may be unreachable from now before the token expires.
    pub fn budget(&self, now: Instant) -> Option<Duration> {
        self.expires_at.map(|e| e.saturating_duration_since(now))
    }
}

/// Pure timing: grace and sleep for a token or lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalTiming {
    pub grace: Duration,
}

impl RenewalTiming {
    /// Draw a grace of 10–20 % of `ttl`.
    pub fn for_ttl(ttl: Duration, rng: &mut impl Rng) -> Self {
        let tenth = ttl / 10;
        Self { grace: tenth + tenth.mul_f64(rng.random::<f64>()) }
    }

    /// Sleep before acting: 2/3 of what remains plus 1/3 of the grace (≈ 70–73 % of a fresh TTL).
    pub fn sleep(&self, remaining: Duration) -> Duration {
        (remaining * 2 / 3 + self.grace / 3).min(remaining)
    }

    /// Is `remaining` too little to keep renewing?
    pub fn exhausted(&self, remaining: Duration) -> bool {
        remaining <= self.grace
    }
}

/// What the watcher does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Renew,
    Login,
    /// Neither renewing nor logging in can help now; look for a new token
    /// (a token file) and retry renewal now and then, in case the operator
    /// fixes the policy or the token.
    Retry,
}

/// The token in hand and the timing drawn for it.
struct Held {
    lease: TokenLease,
    /// When `lease` was issued or last renewed.
    obtained: Instant,
    timing: RenewalTiming,
    /// The TTL a fresh token gets; a renewal returning less means the max
    /// TTL is in sight, and the grace stays sized for the full TTL so the
    /// login happens with time to spare.
    full_ttl: Duration,
}

impl Held {
    /// A token just obtained: at startup, by a login or from the token file.
    fn fresh(lease: TokenLease) -> Self {
        let timing = RenewalTiming::for_ttl(lease.ttl, &mut rand::rng());
        Self { full_ttl: lease.ttl, timing, lease, obtained: Instant::now() }
    }

    /// The same token, renewed.
    fn renewed(&mut self, lease: TokenLease) {
        if lease.ttl >= self.full_ttl {
            // Fully extended: re-draw the grace for the new TTL.
            *self = Self::fresh(lease);
        } else {
            (self.lease, self.obtained) = (lease, Instant::now());
        }
    }
}

/// Renew or log in again until `shutdown` flips to true.
pub async fn watch_token<A: TokenApi>(
    api: Arc<A>,
    initial: TokenLease,
    status: Arc<RwLock<TokenStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let backoff = Backoff::default();
    let mut held = Held::fresh(initial);
    let mut failures = 0u32;
    let mut renew_denied = false;
    let mut login_impossible = !api.can_login();
    // The operator has been told this token is stranded / has expired.
    let (mut told_stranded, mut told_expired) = (false, false);
    loop {
        let now = Instant::now();
        if held.lease.ttl.is_zero() {
            set(&status, |s| {
                s.expires_at = None;
                s.next_action_at = None;
                s.renewable = held.lease.renewable;
                s.stranded = false;
            });
            tracing::info!("vault token does not expire; nothing to renew");
            let _ = shutdown.wait_for(|s| *s).await;
            return;
        }
        let (expires, timing) = (held.obtained + held.lease.ttl, held.timing);
        let remaining = expires.saturating_duration_since(now);
        let action = if held.lease.renewable && !renew_denied && !timing.exhausted(remaining) {
            Action::Renew
        } else if !login_impossible {
            Action::Login
        } else {
            Action::Retry
        };
        if action == Action::Retry && !told_stranded {
            told_stranded = true;
            tell_stranded(remaining, api.can_reload());
        }
        let wait = match action {
            _ if failures > 0 => backoff.delay(failures, Some(remaining).filter(|r| !r.is_zero()), &mut rand::rng()),
            // Wake no later than when the grace begins, so a capped token
            // is replaced with the grace still to spare.
            Action::Renew => timing.sleep(remaining).min(remaining.saturating_sub(timing.grace)),
            Action::Login if timing.exhausted(remaining) => Duration::ZERO,
            Action::Login => timing.sleep(remaining),
            Action::Retry => retry_wait(remaining, backoff.max),
        };
        let at = now + wait;
        set(&status, |s| {
            s.expires_at = Some(expires);
            s.renewable = held.lease.renewable;
            s.next_action_at = Some(at);
            s.consecutive_failures = failures;
            s.renew_denied = renew_denied;
            s.stranded = action == Action::Retry;
        });
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if action == Action::Retry {
            match api.reload().await {
                Ok(Some(new)) => {
                    (failures, renew_denied, told_stranded, told_expired) = (0, false, false, false);
                    tracing::info!(ttl = %humantime::format_duration(new.ttl), "picked up a new vault token from the token file");
                    held = Held::fresh(new);
                    set(&status, |s| s.reloads += 1);
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the token file does not hold a token vault accepts"),
            }
            if Instant::now() >= expires {
                // Renewing an expired token cannot work; only a new one can.
                if !told_expired {
                    told_expired = true;
                    tracing::error!(
                        "THE VAULT TOKEN HAS EXPIRED: rotator cannot use vault until it is given a new token"
                    );
                }
                continue;
            }
        }
        match action {
            Action::Renew | Action::Retry => match api.renew_self().await {
                // Vault rounds a token's last second down to 0: it is about
                // to expire, not become eternal. Keep the expiry we know.
                Ok(new) if new.ttl.is_zero() => tracing::debug!("vault token renewal left no time"),
                Ok(new) => {
                    (failures, renew_denied) = (0, false);
                    tracing::debug!(ttl = %humantime::format_duration(new.ttl), "vault token renewed");
                    held.renewed(new);
                    set(&status, |s| s.renewals += 1);
                }
                Err(e) if matches!(e.status(), Some(400 | 403)) => {
                    renew_denied = true;
                    tracing::warn!(error = %e, "vault refused renew-self; logging in again instead of renewing");
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "vault token renewal failed");
                }
            },
            Action::Login => match api.login().await {
                Ok(Some(new)) => {
                    (failures, told_stranded, told_expired) = (0, false, false);
                    tracing::info!(ttl = %humantime::format_duration(new.ttl), "logged in to vault again");
                    held = Held::fresh(new);
                    set(&status, |s| s.logins += 1);
                }
                // The next turn of the loop tells the operator.
                Ok(None) => login_impossible = true,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "vault login failed");
                }
            },
        }
    }
}

/// How long to wait between tries for a token that cannot be extended:
/// at most `max`, and at most half the time left so the tries get denser
/// (a new token file is noticed in time) as expiry nears, but at least a
/// second while there is a second left. After expiry, `max`.
fn retry_wait(remaining: Duration, max: Duration) -> Duration {
    if remaining.is_zero() { max } else { max.min(remaining / 2).max(Duration::from_secs(1).min(remaining)) }
}

/// Say once, loudly, that the token will run out and what to do about it.
fn tell_stranded(remaining: Duration, can_reload: bool) {
    let expires_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + remaining);
    let expires_in = humantime::format_duration(Duration::from_secs(remaining.as_secs()));
    let what_to_do = if can_reload {
        "write a new token to the token file; it is read again before every retry"
    } else {
        "restart rotator with a new token (VAULT_TOKEN or [vault] token), or configure [vault.auth] so it can log in"
    };
    tracing::error!(
        %expires_at,
        %expires_in,
        "THE VAULT TOKEN WILL EXPIRE: it cannot be renewed any further and the token auth method cannot log in; {what_to_do}"
    );
}

fn set(status: &RwLock<TokenStatus>, f: impl FnOnce(&mut TokenStatus)) {
    f(&mut status.write().unwrap_or_else(|p| p.into_inner()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grace_is_ten_to_twenty_percent_and_sleep_lands_near_seventy_percent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let ttl = Duration::from_secs(3600);
        for _ in 0..200 {
            let p = RenewalTiming::for_ttl(ttl, &mut rng);
            assert!(p.grace >= Duration::from_secs(360) && p.grace <= Duration::from_secs(720), "{:?}", p.grace);
            let s = p.sleep(ttl).as_secs_f64() / 3600.0;
            assert!((0.69..=0.74).contains(&s), "{s}");
        }
    }

    #[test]
    fn a_remaining_ttl_inside_the_grace_is_exhausted() {
        let p = RenewalTiming { grace: Duration::from_secs(60) };
        assert!(p.exhausted(Duration::from_secs(59)));
        assert!(!p.exhausted(Duration::from_secs(61)));
        assert_eq!(p.sleep(Duration::from_secs(10)), Duration::from_secs(10));
    }
}
