//! Request rates for the status page: the request counters sampled every few seconds, so that
//! totals become requests and 5xx per second over the last minute.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Observer;
use super::metrics::Metrics;

/// How often request counts are sampled for the rates.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The window rates are computed over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Request and 5xx counts by route.
pub(crate) type Counts = HashMap<String, RouteCounts>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RouteCounts {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

/// Samples of the request counters over the last minute, to turn totals into rates.
#[derive(Debug)]
pub struct Rates {
    created: Instant,
    samples: Mutex<VecDeque<(Instant, Counts)>>,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            created: Instant::now(),
            samples: Mutex::new(VecDeque::new()),
        }
    }
}

impl Rates {
    /// Takes one sample and forgets those older than the window.
    pub fn sample(&self, metrics: &Metrics) {
        let now = Instant::now();
        let counts = counts(metrics);
        let mut samples = self.lock();
        samples.push_back((now, counts));
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW + SAMPLE_EVERY)
        {
            samples.pop_front();
        }
    }

    /// Per route: (requests/s, 5xx/s) since the oldest sample in the window (or since start).
    pub(crate) fn per_second(&self, current: &Counts) -> HashMap<String, (f64, f64)> {
        let now = Instant::now();
        let samples = self.lock();
        let empty = Counts::new();
        let (since, base) = samples
            .iter()
            .find(|(at, _)| now.duration_since(*at) <= RATE_WINDOW)
            .map_or((self.created, &empty), |(at, counts)| (*at, counts));
        let seconds = now.duration_since(since).as_secs_f64().max(1.0);
        current
            .iter()
            .map(|(route, counts)| {
                let before = base.get(route).copied().unwrap_or_default();
                let requests = counts.requests.saturating_sub(before.requests) as f64 / seconds;
                let errors = counts.errors.saturating_sub(before.errors) as f64 / seconds;
                (route.clone(), (requests, errors))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Counts)>> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Samples the request counters every few seconds until `shutdown` or the observer is gone.
pub async fn sample_rates(observer: Weak<Observer>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(observer) = observer.upgrade() else {
            return;
        };
        observer.rates.sample(&observer.metrics);
    }
}

/// Totals by route, from the request counter.
pub(crate) fn counts(metrics: &Metrics) -> Counts {
    let mut counts = Counts::new();
    for family in prometheus::core::Collector::collect(&metrics.requests) {
        for metric in family.get_metric() {
            let mut route = None;
            let mut error = false;
            for label in metric.get_label() {
                match label.name() {
                    "route" => route = Some(label.value()),
                    "status" => error = label.value().starts_with('5'),
                    _ => {}
                }
            }
            let Some(route) = route else { continue };
            // Counter values are whole numbers well inside f64's exact range.
            let value = metric.get_counter().get_value() as u64;
            let entry = counts.entry(route.to_owned()).or_default();
            entry.requests += value;
            if error {
                entry.errors += value;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_the_increase_over_the_window() {
        let metrics = Metrics::new();
        let rates = Rates::default();
        let count = |status: http::StatusCode, n: u32| {
            for _ in 0..n {
                metrics.request(&super::super::metrics::RequestOutcome {
                    route: Some("/api"),
                    pool: Some("api"),
                    status,
                    failure: None,
                    total: Duration::from_millis(1),
                    connect: None,
                    first_byte: None,
                });
            }
        };
        count(http::StatusCode::OK, 10);
        rates.sample(&metrics);
        count(http::StatusCode::OK, 3);
        count(http::StatusCode::BAD_GATEWAY, 2);
        let current = counts(&metrics);
        assert_eq!(
            current["/api"],
            RouteCounts {
                requests: 15,
                errors: 2
            }
        );
        // The sample was taken just now, so the rate is the increase since it over at
        // least one second.
        let (requests, errors) = rates.per_second(&current)["/api"];
        assert!((requests - 5.0).abs() < 1e-9, "{requests}");
        assert!((errors - 2.0).abs() < 1e-9, "{errors}");
    }
}
