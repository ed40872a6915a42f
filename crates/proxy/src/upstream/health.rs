//! The health of one server: active checks (rise/fall hysteresis) and passive outlier detection
//! (consecutive failures eject it for a growing backoff), combined into one availability
//! predicate.
//!
//! A [`ServerState`] is keyed by pool and address in a [`StateRegistry`] that outlives config
//! snapshots, so a reload (or a DNS change that keeps an address) keeps what was learnt about a
//! server. The request path reads two atomics per candidate; the mutexes are taken only when a
//! failure is recorded, when a check result arrives, or while a server is ejected.
//!
//! Every state change is logged once, with target `gatehouse::health`; single probes and single
//! failures are not.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use gatehouse_config::PassiveHealth;
use tokio::time::Instant;

use crate::failure::FailureKind;
use crate::observe::transition::Transition;

/// What is known about one server, shared by every snapshot that contains it.
#[derive(Debug)]
pub struct ServerState {
    /// Requests in flight on this server (each holds one connection).
    pub(crate) in_flight: AtomicU32,
    /// Mirrors `active.healthy == false`, read on every selection.
    down: AtomicBool,
    /// Mirrors `passive.ejected_until.is_some()`, read on every selection.
    ejected: AtomicBool,
    /// Mirrors `passive.ejections > 0`: the next success ends the probation.
    on_probation: AtomicBool,
    /// Consecutive upstream-side failures, reset by any success.
    consecutive_failures: AtomicU32,
    /// Consecutive timeouts among them, reset by any other outcome.
    consecutive_timeouts: AtomicU32,
    active: Mutex<Active>,
    passive: Mutex<Passive>,
}

/// Active check state.
#[derive(Debug)]
struct Active {
    healthy: bool,
    /// Consecutive results contradicting `healthy` (failures while up, passes while down).
    streak: u32,
    /// Why the server is down (the failing check's kind or `status 500`); `None` while up.
    reason: Option<String>,
    since: SystemTime,
}

/// Passive (outlier detection) state.
#[derive(Debug, Default)]
struct Passive {
    ejected_until: Option<Instant>,
    /// When the last ejection began and how long it was for (wall clock, for the status page).
    last_ejection: Option<(SystemTime, Duration)>,
    /// Ejections since the last success; each doubles the next ejection.
    ejections: u32,
    /// The kind that caused the last ejection.
    cause: Option<FailureKind>,
}

/// What a health check observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Pass,
    /// Why it failed, e.g. `connection_refused` or `status 500`.
    Fail(String),
}

impl Default for ServerState {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            down: AtomicBool::new(false),
            ejected: AtomicBool::new(false),
            on_probation: AtomicBool::new(false),
            consecutive_failures: AtomicU32::new(0),
            consecutive_timeouts: AtomicU32::new(0),
            active: Mutex::new(Active {
                healthy: true,
                streak: 0,
                reason: None,
                since: SystemTime::now(),
            }),
            passive: Mutex::new(Passive::default()),
        }
    }
}

impl ServerState {
    /// May a request be sent to this server now? Down by active checks, or ejected by passive
    /// health until its backoff ends, means no. A server whose ejection has ended is available
    /// again, on probation: one more failure ejects it at once.
    pub fn is_available(&self, now: Instant) -> bool {
        // The ejection is looked at first so that an expired one is cleared even while the
        // server is down by active checks.
        !self.is_ejected(now) && !self.down.load(Ordering::Relaxed)
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// One active check result, with the thresholds. Returns the transition it caused, if any.
    pub fn observe_check(
        &self,
        result: CheckResult,
        unhealthy_threshold: u32,
        healthy_threshold: u32,
    ) -> Option<Transition> {
        let mut active = lock(&self.active);
        let contradicts = match (&result, active.healthy) {
            (CheckResult::Pass, true) | (CheckResult::Fail(_), false) => false,
            (CheckResult::Pass, false) | (CheckResult::Fail(_), true) => true,
        };
        if let (CheckResult::Fail(reason), false) = (&result, active.healthy) {
            // Still down: keep the latest reason (it may change from refused to timeout).
            active.reason = Some(reason.clone());
        }
        if !contradicts {
            active.streak = 0;
            return None;
        }
        active.streak += 1;
        let threshold = if active.healthy {
            unhealthy_threshold
        } else {
            healthy_threshold
        };
        if active.streak < threshold.max(1) {
            return None;
        }
        active.streak = 0;
        active.since = SystemTime::now();
        active.healthy = !active.healthy;
        self.down.store(!active.healthy, Ordering::Relaxed);
        match result {
            CheckResult::Fail(reason) => {
                active.reason = Some(reason.clone());
                Some(Transition::Down { reason })
            }
            CheckResult::Pass => {
                active.reason = None;
                Some(Transition::Up)
            }
        }
    }

    /// A request got a response from this server. A success from a request sent before an
    /// ejection does not end it (the server is on probation only once the ejection is over).
    /// The clock is read only for a server on probation: this runs for every response.
    pub fn record_success(&self) -> Option<Transition> {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.consecutive_timeouts.load(Ordering::Relaxed) != 0 {
            self.consecutive_timeouts.store(0, Ordering::Relaxed);
        }
        if !self.on_probation.load(Ordering::Relaxed) || self.is_ejected(Instant::now()) {
            return None;
        }
        let mut passive = lock(&self.passive);
        if passive.ejections == 0 {
            return None;
        }
        passive.ejections = 0;
        passive.cause = None;
        self.on_probation.store(false, Ordering::Relaxed);
        Some(Transition::Recovered)
    }

    /// A request to this server failed with an upstream-side `kind`. Ejects the server when the
    /// failures reach the threshold, or the timeouts in a row reach theirs (a server that
    /// accepts but never answers costs each request the whole timeout, so it goes sooner), or
    /// at once while on probation, unless `may_eject` says the
    /// pool has too many servers out already (`None`). `may_eject` is called without any lock
    /// of this state held (it looks at every server of the pool, this one included); what it
    /// returns is held until the ejection is recorded.
    pub fn record_failure<G>(
        &self,
        kind: FailureKind,
        policy: &PassiveHealth,
        now: Instant,
        may_eject: impl FnOnce() -> Option<G>,
    ) -> Option<Transition> {
        if policy.consecutive_failures == 0 {
            return None;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let timeouts = if matches!(
            kind,
            FailureKind::ConnectionTimeout | FailureKind::HttpResponseTimeout
        ) {
            self.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive_timeouts.store(0, Ordering::Relaxed);
            0
        };
        let timed_out = policy.consecutive_timeouts > 0 && timeouts >= policy.consecutive_timeouts;
        let on_probation = self.on_probation.load(Ordering::Relaxed);
        if failures < policy.consecutive_failures && !timed_out && !on_probation {
            return None;
        }
        if self.is_ejected(now) {
            // Already out (requests that were in flight when it was ejected).
            return None;
        }
        let _decision = may_eject()?;
        let mut passive = lock(&self.passive);
        let duration = ejection_duration(policy, passive.ejections);
        passive.ejected_until = Some(now + duration);
        passive.last_ejection = Some((SystemTime::now(), duration));
        passive.ejections = passive.ejections.saturating_add(1);
        passive.cause = Some(kind);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.consecutive_timeouts.store(0, Ordering::Relaxed);
        self.ejected.store(true, Ordering::Relaxed);
        self.on_probation.store(true, Ordering::Relaxed);
        Some(Transition::Ejected {
            cause: kind,
            duration,
        })
    }

    /// Whether passive health has the server out right now. Clears an ejection that is over.
    /// Takes this state's `passive` lock only while the server is (or was) ejected, and never
    /// while holding another lock.
    pub fn is_ejected(&self, now: Instant) -> bool {
        if !self.ejected.load(Ordering::Relaxed) {
            return false;
        }
        let mut passive = lock(&self.passive);
        match passive.ejected_until {
            Some(until) if until > now => true,
            _ => {
                passive.ejected_until = None;
                self.ejected.store(false, Ordering::Relaxed);
                false
            }
        }
    }

    /// Why the server is out, in words, or `None` when it is available.
    pub fn why_out(&self, now: Instant) -> Option<String> {
        let mut why = String::new();
        if self.is_down() {
            let active = lock(&self.active);
            let for_how_long = SystemTime::now()
                .duration_since(active.since)
                .unwrap_or_default()
                .as_secs();
            let _ = write!(
                why,
                "failing health checks ({}) for {for_how_long}s",
                active.reason.as_deref().unwrap_or("unknown")
            );
        }
        if self.ejected.load(Ordering::Relaxed) {
            let passive = lock(&self.passive);
            if let Some(until) = passive.ejected_until.filter(|until| *until > now) {
                if !why.is_empty() {
                    why.push_str("; ");
                }
                let _ = write!(
                    why,
                    "ejected after repeated {} for {}s more",
                    passive.cause.map_or("failures", FailureKind::token),
                    (until - now).as_secs_f64().ceil()
                );
            }
        }
        (!why.is_empty()).then_some(why)
    }

    /// The short reason a down or ejected server is out (`status 500`, `connection_refused`).
    pub fn reason(&self, now: Instant) -> Option<String> {
        if self.is_down() {
            return lock(&self.active).reason.clone();
        }
        if self.is_ejected(now) {
            return lock(&self.passive)
                .cause
                .map(|kind| kind.token().to_owned());
        }
        None
    }
}

/// A server's health as the status page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Healthy,
    /// Out by active health checks.
    Down,
    /// Out by passive health, for a while.
    Ejected,
}

impl HealthState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Down => "down",
            Self::Ejected => "ejected",
        }
    }
}

/// A server's state, why and since when.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub state: HealthState,
    /// Why it is out (`status 500`, `connection_refused`), with how long for an ejection.
    pub reason: Option<String>,
    /// When it entered this state (for a healthy server: when it was last put back, or when
    /// gatehouse first saw it).
    pub since: SystemTime,
}

impl ServerState {
    pub fn report(&self, now: Instant) -> HealthReport {
        let (active_since, active_reason) = {
            let active = lock(&self.active);
            (active.since, active.reason.clone())
        };
        if self.is_down() {
            return HealthReport {
                state: HealthState::Down,
                reason: active_reason,
                since: active_since,
            };
        }
        let ejected = self.is_ejected(now);
        let passive = lock(&self.passive);
        match passive.last_ejection {
            Some((at, _)) if ejected => HealthReport {
                state: HealthState::Ejected,
                reason: Some(match passive.ejected_until {
                    Some(until) => format!(
                        "{} ({}s more)",
                        passive.cause.map_or("failures", FailureKind::token),
                        until.saturating_duration_since(now).as_secs_f64().ceil()
                    ),
                    None => passive
                        .cause
                        .map_or("failures", FailureKind::token)
                        .to_owned(),
                }),
                since: at,
            },
            Some((at, duration)) => HealthReport {
                state: HealthState::Healthy,
                reason: None,
                since: active_since.max(at + duration),
            },
            None => HealthReport {
                state: HealthState::Healthy,
                reason: None,
                since: active_since,
            },
        }
    }
}

/// The n-th ejection in a row lasts `ejection × 2ⁿ`, at most `max_ejection`.
fn ejection_duration(policy: &PassiveHealth, previous: u32) -> Duration {
    let factor = 1u32.checked_shl(previous.min(20)).unwrap_or(u32::MAX);
    policy
        .ejection
        .checked_mul(factor)
        .unwrap_or(policy.max_ejection)
        .min(policy.max_ejection)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// (pool name, server address)
type StateKey = (Arc<str>, SocketAddr);

/// Server states by (pool, address), shared by successive snapshots so that health and
/// ejections survive a reload. Entries of servers no snapshot uses any more fall away.
#[derive(Debug, Default)]
pub struct StateRegistry {
    states: Mutex<HashMap<StateKey, Weak<ServerState>>>,
}

impl StateRegistry {
    /// The state of `addr` in `pool`: the existing one if a live snapshot has it, else new.
    pub fn state(&self, pool: &Arc<str>, addr: SocketAddr) -> Arc<ServerState> {
        let mut states = lock(&self.states);
        let key = (Arc::clone(pool), addr);
        if let Some(state) = states.get(&key).and_then(Weak::upgrade) {
            return state;
        }
        states.retain(|_, state| state.strong_count() > 0);
        let state = Arc::new(ServerState::default());
        states.insert(key, Arc::downgrade(&state));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(consecutive_failures: u32) -> PassiveHealth {
        PassiveHealth {
            consecutive_failures,
            consecutive_timeouts: 0,
            ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }

    fn fail(reason: &str) -> CheckResult {
        CheckResult::Fail(reason.to_owned())
    }

    #[test]
    fn active_checks_follow_the_thresholds_both_ways() {
        let state = ServerState::default();
        assert_eq!(state.observe_check(fail("status 500"), 3, 2), None);
        assert_eq!(state.observe_check(fail("status 500"), 3, 2), None);
        assert!(!state.is_down(), "two failures of three keep it up");
        assert_eq!(
            state.observe_check(fail("connection_refused"), 3, 2),
            Some(Transition::Down {
                reason: "connection_refused".into()
            })
        );
        assert!(state.is_down());
        assert_eq!(
            state.reason(Instant::now()).as_deref(),
            Some("connection_refused")
        );
        // Further failures are not transitions (logged once).
        assert_eq!(state.observe_check(fail("status 503"), 3, 2), None);
        assert_eq!(state.reason(Instant::now()).as_deref(), Some("status 503"));
        assert_eq!(state.observe_check(CheckResult::Pass, 3, 2), None);
        assert!(state.is_down(), "one pass of two keeps it down");
        assert_eq!(
            state.observe_check(CheckResult::Pass, 3, 2),
            Some(Transition::Up)
        );
        assert!(!state.is_down());
        assert!(state.is_available(Instant::now()));
    }

    #[test]
    fn a_pass_interrupts_a_failure_streak() {
        let state = ServerState::default();
        for _ in 0..5 {
            assert_eq!(state.observe_check(fail("timeout"), 2, 2), None);
            assert_eq!(state.observe_check(CheckResult::Pass, 2, 2), None);
        }
        assert!(!state.is_down());
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_backs_off_and_probation_ends_with_a_success() {
        let state = ServerState::default();
        let policy = policy(3);
        let kind = FailureKind::ConnectionRefused;
        let now = Instant::now();
        assert_eq!(state.record_failure(kind, &policy, now, || Some(())), None);
        assert_eq!(state.record_failure(kind, &policy, now, || Some(())), None);
        assert_eq!(
            state.record_failure(kind, &policy, now, || Some(())),
            Some(Transition::Ejected {
                cause: kind,
                duration: Duration::from_secs(10)
            })
        );
        assert!(!state.is_available(Instant::now()));
        assert!(
            state
                .why_out(Instant::now())
                .is_some_and(|w| w.contains("connection_refused"))
        );

        tokio::time::advance(Duration::from_millis(9_900)).await;
        assert!(!state.is_available(Instant::now()), "still ejected at 9.9s");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(
            state.is_available(Instant::now()),
            "back on probation after 10s"
        );

        // On probation one failure ejects again, for twice as long.
        assert_eq!(
            state.record_failure(kind, &policy, Instant::now(), || Some(())),
            Some(Transition::Ejected {
                cause: kind,
                duration: Duration::from_secs(20)
            })
        );
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(!state.is_available(Instant::now()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(state.is_available(Instant::now()));

        // A success ends the probation: the backoff starts over and one failure is not enough.
        assert_eq!(state.record_success(), Some(Transition::Recovered));
        assert_eq!(state.record_success(), None);
        assert_eq!(
            state.record_failure(kind, &policy, Instant::now(), || Some(())),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_is_capped_and_refused_when_the_pool_may_not_lose_more() {
        let policy = policy(1);
        let state = ServerState::default();
        let kind = FailureKind::HttpResponseTimeout;
        assert_eq!(
            state.record_failure(kind, &policy, Instant::now(), || None::<()>),
            None
        );
        assert!(state.is_available(Instant::now()));
        // Repeated ejections never exceed max_ejection.
        for _ in 0..12 {
            let transition = state.record_failure(kind, &policy, Instant::now(), || Some(()));
            let Some(Transition::Ejected { duration, .. }) = transition else {
                panic!("expected an ejection, got {transition:?}");
            };
            assert!(duration <= Duration::from_secs(300));
            tokio::time::advance(duration).await;
        }
        assert_eq!(ejection_duration(&policy, 30), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_success_does_not_end_an_ejection_and_a_late_failure_does_not_hang() {
        let state = Arc::new(ServerState::default());
        let policy = policy(1);
        let kind = FailureKind::HttpResponseTimeout;
        assert!(
            state
                .record_failure(kind, &policy, Instant::now(), || Some(()))
                .is_some()
        );
        // A request sent before the ejection answers now: the ejection stands.
        assert_eq!(state.record_success(), None);
        assert!(!state.is_available(Instant::now()));
        // Active checks take it down too; the ejection runs out unobserved.
        state.observe_check(fail("status 500"), 1, 1);
        tokio::time::advance(Duration::from_secs(11)).await;
        // A failure now, with a cap check that looks at this very server (as the pool's does),
        // must neither deadlock nor leave the expired ejection in place.
        let this = Arc::clone(&state);
        let transition = state.record_failure(kind, &policy, Instant::now(), move || {
            (!this.is_ejected(Instant::now())).then_some(())
        });
        assert!(
            matches!(transition, Some(Transition::Ejected { duration, .. }) if duration == Duration::from_secs(20))
        );
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let state = ServerState::default();
        let policy = policy(2);
        let kind = FailureKind::ConnectionTerminated;
        for _ in 0..10 {
            assert_eq!(
                state.record_failure(kind, &policy, Instant::now(), || Some(())),
                None
            );
            assert_eq!(state.record_success(), None);
        }
        assert!(state.is_available(Instant::now()));
    }

    #[test]
    fn passive_health_off_never_ejects() {
        let state = ServerState::default();
        for _ in 0..100 {
            let transition = state.record_failure(
                FailureKind::ConnectionRefused,
                &policy(0),
                Instant::now(),
                || Some(()),
            );
            assert_eq!(transition, None);
        }
    }

    #[test]
    fn timeouts_in_a_row_eject_sooner_than_other_failures() {
        let timeouts = PassiveHealth {
            consecutive_timeouts: 2,
            ..policy(5)
        };
        let now = Instant::now();
        let fail =
            |state: &ServerState, kind| state.record_failure(kind, &timeouts, now, || Some(()));
        let state = ServerState::default();
        assert_eq!(fail(&state, FailureKind::HttpResponseTimeout), None);
        // Another kind in between starts the count of timeouts again.
        assert_eq!(fail(&state, FailureKind::ConnectionRefused), None);
        assert_eq!(fail(&state, FailureKind::ConnectionTimeout), None);
        assert!(matches!(
            fail(&state, FailureKind::HttpResponseTimeout),
            Some(Transition::Ejected {
                cause: FailureKind::HttpResponseTimeout,
                ..
            })
        ));
        // With consecutive_timeouts = 0, timeouts are failures like any other.
        let state = ServerState::default();
        for _ in 0..4 {
            assert_eq!(
                state.record_failure(FailureKind::HttpResponseTimeout, &policy(5), now, || Some(
                    ()
                )),
                None
            );
        }
        assert!(
            state
                .record_failure(FailureKind::HttpResponseTimeout, &policy(5), now, || Some(
                    ()
                ))
                .is_some()
        );
    }

    #[test]
    fn the_registry_keeps_state_while_a_snapshot_holds_it() {
        let registry = StateRegistry::default();
        let pool: Arc<str> = "app".into();
        let addr: SocketAddr = "127.0.0.1:3000".parse().unwrap_or_else(|e| panic!("{e}"));
        let first = registry.state(&pool, addr);
        first.observe_check(fail("status 500"), 1, 1);
        let again = registry.state(&pool, addr);
        assert!(Arc::ptr_eq(&first, &again));
        assert!(again.is_down());
        let other_pool = registry.state(&"api".into(), addr);
        assert!(!Arc::ptr_eq(&first, &other_pool));
        drop((first, again));
        assert!(
            !registry.state(&pool, addr).is_down(),
            "forgotten once unused"
        );
    }
}
