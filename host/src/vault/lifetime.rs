//! Keeping rotator's own token alive, the way Vault Agent's lifetime watcher
//! does, without its known failures.
//!
//! Timing ([`Plan`]): a grace period of 10 % of the TTL plus a random 0–10 %
//! more is drawn per token; the watcher sleeps 2/3 of the remaining TTL plus
//! 1/3 of the grace, then renews (≈70 % of the TTL, spread across replicas).
//! When the remaining TTL after a renewal is inside the grace (the max TTL is
//! near) or renewal is denied, it logs in again instead, if the auth method
//! can. Failures back off 10 s → 5 min, jittered, never past expiry. A policy
//! that denies `renew-self` is remembered, so it costs one request per token
//! lifetime, not a flood (hashicorp/vault#22575).
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
    /// Set once Vault refused `renew-self`; the watcher then only logs in.
    pub renew_denied: bool,
}

impl TokenStatus {
    /// How long Vault may be unreachable from now before the token expires.
    pub fn budget(&self, now: Instant) -> Option<Duration> {
        self.expires_at.map(|e| e.saturating_duration_since(now))
    }
}

/// Pure timing: grace and sleep for a token or lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub grace: Duration,
}

impl Plan {
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
    /// Neither renewing nor logging in can help now; retry renewal rarely in
    /// case the operator fixes the policy or the token.
    Retry,
}

/// Renew or log in again until `shutdown` flips to true.
pub async fn watch_token<A: TokenApi>(
    api: Arc<A>,
    initial: TokenLease,
    status: Arc<RwLock<TokenStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let backoff = Backoff::default();
    let mut lease = initial;
    let mut obtained = Instant::now();
    let mut plan = Plan::for_ttl(lease.ttl, &mut rand::rng());
    // The TTL a fresh token gets; a renewal returning less means the max TTL
    // is in sight, and the grace stays sized for the full TTL so the login
    // happens with time to spare.
    let mut full_ttl = lease.ttl;
    let mut failures = 0u32;
    let mut renew_denied = false;
    let mut login_impossible = !api.can_login();
    loop {
        let now = Instant::now();
        if lease.ttl.is_zero() {
            set(&status, |s| {
                s.expires_at = None;
                s.next_action_at = None;
                s.renewable = lease.renewable;
            });
            tracing::info!("vault token does not expire; nothing to renew");
            let _ = shutdown.wait_for(|s| *s).await;
            return;
        }
        let expires = obtained + lease.ttl;
        let remaining = expires.saturating_duration_since(now);
        let action = if lease.renewable && !renew_denied && !plan.exhausted(remaining) {
            Action::Renew
        } else if !login_impossible {
            Action::Login
        } else {
            Action::Retry
        };
        let wait = match action {
            _ if failures > 0 => backoff.delay(failures, Some(remaining).filter(|r| !r.is_zero()), &mut rand::rng()),
            // Wake no later than when the grace begins, so a capped token
            // is replaced with the grace still to spare.
            Action::Renew => plan.sleep(remaining).min(remaining.saturating_sub(plan.grace)),
            Action::Login if plan.exhausted(remaining) => Duration::ZERO,
            Action::Login => plan.sleep(remaining),
            Action::Retry => backoff.max,
        };
        let at = now + wait;
        set(&status, |s| {
            s.expires_at = Some(expires);
            s.renewable = lease.renewable;
            s.next_action_at = Some(at);
            s.consecutive_failures = failures;
            s.renew_denied = renew_denied;
        });
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match action {
            Action::Renew | Action::Retry => match api.renew_self().await {
                Ok(new) => {
                    failures = 0;
                    renew_denied = false;
                    if new.ttl >= full_ttl {
                        // Fully extended: re-draw the grace for the new TTL.
                        full_ttl = new.ttl;
                        plan = Plan::for_ttl(new.ttl, &mut rand::rng());
                    }
                    lease = new;
                    obtained = Instant::now();
                    set(&status, |s| s.renewals += 1);
                    tracing::debug!(ttl = ?lease.ttl, "vault token renewed");
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
                    failures = 0;
                    full_ttl = new.ttl;
                    plan = Plan::for_ttl(new.ttl, &mut rand::rng());
                    lease = new;
                    obtained = Instant::now();
                    set(&status, |s| s.logins += 1);
                    tracing::info!(ttl = ?lease.ttl, "logged in to vault again");
                }
                Ok(None) => {
                    login_impossible = true;
                    tracing::error!(
                        expires_in = ?remaining,
                        "the vault token cannot be renewed further and the token auth method cannot log in: \
                         supply a new token before it expires"
                    );
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "vault login failed");
                }
            },
        }
    }
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
            let p = Plan::for_ttl(ttl, &mut rng);
            assert!(p.grace >= Duration::from_secs(360) && p.grace <= Duration::from_secs(720), "{:?}", p.grace);
            let s = p.sleep(ttl).as_secs_f64() / 3600.0;
            assert!((0.69..=0.74).contains(&s), "{s}");
        }
    }

    #[test]
    fn a_remaining_ttl_inside_the_grace_is_exhausted() {
        let p = Plan { grace: Duration::from_secs(60) };
        assert!(p.exhausted(Duration::from_secs(59)));
        assert!(!p.exhausted(Duration::from_secs(61)));
        assert_eq!(p.sleep(Duration::from_secs(10)), Duration::from_secs(10));
    }
}
