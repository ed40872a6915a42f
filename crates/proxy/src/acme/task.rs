//! The ACME task: keeps a valid certificate for the configured names, from start to shutdown.
//!
//! At start it serves the certificate kept in `state_dir` when it still covers the names and has
//! not expired (no new order). A certificate is renewed once a third of its lifetime is left.
//! Only the instance holding `acme/order.lock` orders; the others re-read the directory every
//! few seconds and serve what the holder wrote. A failed order is retried with exponential
//! backoff (10 s doubling up to 6 h, ±25 % jitter), never sooner than the CA's Retry-After;
//! the certificate in service keeps serving meanwhile, and each failure is a warning naming
//! how long it has left.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::AcmeConfig;
use tokio::sync::watch;

use super::order::{self, OrderError};
use super::{AcmeState, lock, store};

const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// A rate-limited order waits at least this long (Let's Encrypt's limits are per hour or week).
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(3600);
/// How often an instance that does not hold the lock looks for the holder's certificate.
const FOLLOWER_POLL: Duration = Duration::from_secs(2);
/// A certificate far from renewal is still looked at this often (the clock may jump; another
/// instance may have renewed).
const IDLE_CHECK: Duration = Duration::from_secs(3600);

/// Runs until `shutdown` turns true. `config` carries the `[acme]` in force (a reload sends
/// the new one; `None` when `acme` was turned off).
pub async fn run(
    state: Arc<AcmeState>,
    mut config: watch::Receiver<Option<AcmeConfig>>,
    state_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    let mut fresh_account = false;
    let mut following = false;
    state.share_http01_in(state_dir.join("acme").join("http-01"));
    loop {
        let current = config.borrow_and_update().clone();
        let wait = match current {
            None => None,
            Some(cfg) => Some(
                step(
                    &state,
                    &cfg,
                    &state_dir,
                    &mut failures,
                    &mut fresh_account,
                    &mut following,
                )
                .await,
            ),
        };
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            changed = config.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// One look: load, or order when due. Returns how long to wait before the next look.
async fn step(
    state: &AcmeState,
    cfg: &AcmeConfig,
    state_dir: &std::path::Path,
    failures: &mut u32,
    fresh_account: &mut bool,
    following: &mut bool,
) -> Duration {
    let dir = match store::acme_dir(state_dir) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::error!(dir = %state_dir.display(), error = %e, "cannot create the ACME directory in state_dir");
            return backoff(failures, None);
        }
    };
    let now = SystemTime::now();
    let served = served_for(state, cfg);
    match store::load(&dir, &cfg.domains) {
        Ok(Some(kept)) if served.is_none_or(|s| s.1 != kept.not_after) => {
            tracing::info!(domains = ?cfg.domains, expires_in_s = order::secs_until(kept.not_after), "ACME certificate loaded from state_dir");
            record_cert(state, cfg, kept.not_after);
            state.install(kept);
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the kept ACME certificate cannot be used; ordering a new one")
        }
    }
    if let Some((renew, _)) = served_for(state, cfg)
        && renew > now
    {
        *following = false;
        let wait = renew
            .duration_since(now)
            .unwrap_or_default()
            .min(IDLE_CHECK);
        state.update_progress(|p| p.next_attempt = Some(now + wait));
        return wait;
    }
    let guard = match lock::try_lock(&dir) {
        Ok(Some(guard)) => guard,
        Ok(None) => {
            if !*following {
                tracing::info!(domains = ?cfg.domains, "another gatehouse sharing state_dir is ordering; waiting for its certificate");
                *following = true;
            }
            return FOLLOWER_POLL;
        }
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot take the ACME order lock");
            return backoff(failures, None);
        }
    };
    *following = false;
    // The previous holder may have written a certificate since the look above.
    if let Ok(Some(kept)) = store::load(&dir, &cfg.domains)
        && store::renew_at(&kept) > now
    {
        record_cert(state, cfg, kept.not_after);
        state.install(kept);
        return Duration::ZERO;
    }
    let result = obtain(state, cfg, &dir, *fresh_account).await;
    drop(guard);
    match result {
        Ok(not_after) => {
            *failures = 0;
            *fresh_account = false;
            record_cert(state, cfg, not_after);
            state.update_progress(|p| {
                p.last_error = None;
                p.failures = 0;
            });
            Duration::ZERO
        }
        Err(err) => {
            *fresh_account = err.account_gone;
            let left = served_for(state, cfg).map(|(_, end)| order::secs_until(end));
            let wait = backoff(failures, Some(&err));
            tracing::warn!(
                domains = ?cfg.domains,
                error = %err,
                attempt = *failures,
                retry_in_s = wait.as_secs(),
                current_expires_in_s = left,
                "ACME order failed; the certificate in service (if any) keeps serving"
            );
            if let Some((renew, end)) = served_for(state, cfg)
                && near_expiry(renew, end)
            {
                tracing::warn!(
                    domains = ?cfg.domains,
                    expires_in_s = order::secs_until(end),
                    "the ACME certificate expires soon and could not be renewed; clients will refuse it once it has expired"
                );
            }
            state.update_progress(|p| {
                p.last_error = Some(err.message.clone());
                p.failures = *failures;
                p.next_attempt = Some(SystemTime::now() + wait);
            });
            wait
        }
    }
}

/// Orders, writes and installs a certificate; returns its end.
async fn obtain(
    state: &AcmeState,
    cfg: &AcmeConfig,
    dir: &std::path::Path,
    fresh_account: bool,
) -> Result<SystemTime, OrderError> {
    let account = order::account(cfg, dir, fresh_account).await?;
    let (chain, key) = match order::issue(&account, cfg, state).await {
        // The CA forgot the account (a test CA restarted, or it was deactivated): a new one.
        Err(e) if e.account_gone => {
            tracing::warn!(error = %e, "the CA no longer knows the ACME account; creating a new one");
            let account = order::account(cfg, dir, true).await?;
            order::issue(&account, cfg, state).await?
        }
        issued => issued?,
    };
    let text = store::cert_file(&chain, &key);
    let obtained = store::parse(text.as_bytes())
        .map_err(|e| OrderError::plain_message(format!("the issued certificate: {e}")))?;
    let path = store::cert_path(dir, &cfg.domains);
    store::write_atomic(&path, text.as_bytes())
        .map_err(|e| OrderError::plain_message(format!("writing {}: {e}", path.display())))?;
    let not_after = obtained.not_after;
    tracing::info!(domains = ?cfg.domains, file = %path.display(), expires_in_s = order::secs_until(not_after), "ACME certificate issued");
    state.install(obtained);
    Ok(not_after)
}

/// The renewal time and end of the certificate served for the first configured name.
fn served_for(state: &AcmeState, cfg: &AcmeConfig) -> Option<(SystemTime, SystemTime)> {
    let first = cfg.domains.first()?;
    state
        .certs()
        .iter()
        .find(|c| c.names.first() == Some(first) || c.names.contains(first))
        .filter(|c| cfg.domains.iter().all(|d| c.names.contains(d)))
        .map(|c| (store::renew_at(c), c.not_after))
}

/// Within the last sixth of its lifetime (half of the renewal window gone), or 7 days.
fn near_expiry(renew: SystemTime, end: SystemTime) -> bool {
    let window = end.duration_since(renew).unwrap_or_default();
    let left = end.duration_since(SystemTime::now()).unwrap_or_default();
    left <= window / 2 || left <= Duration::from_secs(7 * 86_400)
}

fn record_cert(state: &AcmeState, cfg: &AcmeConfig, not_after: SystemTime) {
    state.update_progress(|p| {
        p.domains.clone_from(&cfg.domains);
        p.not_after = Some(not_after);
    });
}

/// The wait after one more failure: exponential with jitter, at least what the CA asked.
fn backoff(failures: &mut u32, err: Option<&OrderError>) -> Duration {
    *failures = failures.saturating_add(1);
    let exp = failures.saturating_sub(1).min(20);
    let base = FIRST_BACKOFF.saturating_mul(1u32 << exp).min(MAX_BACKOFF);
    let wait = jitter(base);
    let floor = match err {
        Some(e) if e.rate_limited => e.retry_after.unwrap_or(RATE_LIMIT_BACKOFF),
        Some(e) => e.retry_after.unwrap_or_default(),
        None => Duration::ZERO,
    };
    wait.max(floor)
}

/// `base` ±25 %, from the clock's nanoseconds (no need for a real random source here: it only
/// keeps instances that failed together from retrying together).
fn jitter(base: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let spread = f64::from(nanos % 1000) / 1000.0 * 0.5 - 0.25;
    base.mul_f64(1.0 + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_the_cas_wait() {
        let mut failures = 0;
        let first = backoff(&mut failures, None);
        assert!(first >= Duration::from_millis(7500) && first <= Duration::from_millis(12500));
        let second = backoff(&mut failures, None);
        assert!(second >= Duration::from_secs(15) && second <= Duration::from_secs(25));
        for _ in 0..40 {
            assert!(backoff(&mut failures, None) <= MAX_BACKOFF.mul_f64(1.25));
        }
        let limited = OrderError {
            message: String::new(),
            retry_after: None,
            rate_limited: true,
            account_gone: false,
        };
        let mut failures = 0;
        assert!(backoff(&mut failures, Some(&limited)) >= RATE_LIMIT_BACKOFF);
    }
}
