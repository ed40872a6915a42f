//! Defining and registering the metric families (each defined once, in `Metrics::new`).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Latency buckets in seconds, 1 ms to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

// Definitions are static; registering can fail only on a duplicate name, a programming error
// that the unit tests (`tests.rs`) catch.

pub(super) fn register(registry: &Registry, collector: impl prometheus::core::Collector + 'static) {
    if let Err(err) = registry.register(Box::new(collector)) {
        unreachable!("metric registered twice: {err}");
    }
}

pub(super) fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|err| unreachable!("static metric definition {name}: {err}"));
    register(registry, vec.clone());
    vec
}

pub(super) fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntGaugeVec {
    let vec = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|err| unreachable!("static metric definition {name}: {err}"));
    register(registry, vec.clone());
    vec
}

pub(super) fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help)
        .unwrap_or_else(|err| unreachable!("static metric definition {name}: {err}"));
    register(registry, gauge.clone());
    gauge
}

pub(super) fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec());
    let vec = HistogramVec::new(opts, labels)
        .unwrap_or_else(|err| unreachable!("static metric definition {name}: {err}"));
    register(registry, vec.clone());
    vec
}
