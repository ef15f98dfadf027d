//! The wire form of snapshots loses nothing: a snapshot sent through its
//! JSON text and decoded merges exactly like the original, for random
//! snapshots of both models with latencies across the whole range,
//! failures of every kind, and more distinct messages than a step keeps.
//! And a coordinator's whole path (each worker's seconds over the wire
//! into one collector) gives the figures of one recorder that saw every
//! sample.

use std::path::Path;
use std::time::Duration;

use loadctl::metrics::summary::{FailureEntry, StepStats};
use loadctl::metrics::wire::{Fingerprint, WireSnapshot};
use loadctl::metrics::{ErrorKind, Sample, Snapshot, StepRecorder, STANDARD_PERCENTILES};
use loadctl::plan::{Inputs, Overrides, Plan};
use loadctl::runner::collector::Collector;
use loadctl::runner::share::ShareState;
use loadctl::runner::Slice;
use proptest::prelude::*;

/// Microseconds from 0 to past 2^33 (beyond the one-hour cap), spread over
/// every power of two so short and long latencies are equally likely.
fn microseconds() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        20 => (0u32..34, any::<u64>())
            .prop_map(|(bits, noise)| (1u64 << bits) | (noise & ((1u64 << bits) - 1))),
    ]
}

/// One request as the engine reports it, and the second it ended in.
fn request(metrics: usize) -> impl Strategy<Value = (Sample, u64)> {
    let status = prop_oneof![Just(200u16), Just(404), Just(503), 100u16..1000];
    // Up to 90 distinct messages, more than the 64 a step keeps.
    let failure = (0..ErrorKind::ALL.len(), 0u32..90)
        .prop_map(|(kind, n)| (ErrorKind::ALL[kind], format!("failure {n}")));
    (
        (0..metrics, microseconds(), microseconds()),
        (prop::option::of(status), prop::option::of(failure)),
        (0u64..100_000, 0u64..100_000, 0u64..600),
    )
        .prop_map(
            |((metric, latency_us, service_us), (status, failure), (bytes, body, at_s))| {
                let sample = Sample {
                    metric,
                    latency_us,
                    service_us,
                    status,
                    failure,
                    bytes_in: bytes + body,
                    bytes_out: bytes / 3,
                    body_bytes: body,
                };
                (sample, at_s)
            },
        )
}

fn snapshot(metrics: usize, open: bool) -> impl Strategy<Value = Snapshot> {
    (
        prop::collection::vec(request(metrics), 0..300),
        (0u64..1000, 0u64..1000, 0u64..100, 0u64..50),
    )
        .prop_map(move |(requests, (iterations, started, dropped, active))| {
            let mut snapshot = Snapshot::new(metrics, open);
            for (sample, at_s) in &requests {
                snapshot.record(sample, *at_s);
            }
            snapshot.iterations = iterations;
            snapshot.started = started;
            snapshot.dropped = dropped;
            snapshot.active_users = active;
            snapshot
        })
}

/// Two snapshots of the same random plan, and that plan's fingerprint.
fn two_snapshots() -> impl Strategy<Value = (Snapshot, Snapshot, Fingerprint)> {
    (1usize..4, any::<bool>()).prop_flat_map(|(metrics, open)| {
        let names: Vec<String> = (0..metrics).map(|i| format!("step {i}")).collect();
        let fingerprint = Fingerprint::of(names.iter().map(|n| (n.as_str(), Some("GET"))), open);
        (
            snapshot(metrics, open),
            snapshot(metrics, open),
            Just(fingerprint),
        )
    })
}

/// Through the JSON text and back, as a coordinator receives it.
fn over_the_wire(snapshot: &Snapshot, fingerprint: &Fingerprint) -> Snapshot {
    let text = snapshot.to_wire(fingerprint).to_json();
    WireSnapshot::from_json(&text, fingerprint)
        .and_then(|wire| wire.into_snapshot(fingerprint))
        .unwrap_or_else(|e| panic!("an honest snapshot was refused: {e}"))
}

/// A histogram's figures, exactly: its buckets, its total count, min, max,
/// mean and every standard percentile.
#[derive(Debug, PartialEq)]
struct HistogramView {
    buckets: Vec<(u64, u64)>,
    count: u64,
    min: u64,
    max: u64,
    mean_bits: u64,
    percentiles: Vec<u64>,
}

fn histogram_view(h: &hdrhistogram::Histogram<u64>) -> HistogramView {
    HistogramView {
        buckets: h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect(),
        count: h.len(),
        min: h.min(),
        max: h.max(),
        mean_bits: h.mean().to_bits(),
        percentiles: STANDARD_PERCENTILES
            .iter()
            .map(|p| h.value_at_quantile(p / 100.0))
            .collect(),
    }
}

/// Everything a step's figures are read from: its summary (counters,
/// status codes, error kinds, latency and service-time statistics), its
/// failure messages, and both histograms.
#[derive(Debug, PartialEq)]
struct StepView {
    stats: StepStats,
    failures: Vec<FailureEntry>,
    latency: HistogramView,
    service_time: HistogramView,
}

fn step_view(step: &StepRecorder) -> StepView {
    let mut failures = step.failure_entries("step", "GET");
    failures.sort_by(|a, b| (&a.kind, &a.message).cmp(&(&b.kind, &b.message)));
    StepView {
        stats: step.stats("step", None, 1.0, &[]),
        failures,
        latency: histogram_view(step.histogram()),
        service_time: histogram_view(step.service_histogram()),
    }
}

#[derive(Debug, PartialEq)]
struct SnapshotView {
    steps: Vec<StepView>,
    total: StepView,
    iterations: u64,
    started: u64,
    dropped: u64,
}

fn snapshot_view(snapshot: &Snapshot) -> SnapshotView {
    SnapshotView {
        steps: snapshot.steps.iter().map(step_view).collect(),
        total: step_view(&snapshot.total()),
        iterations: snapshot.iterations,
        started: snapshot.started,
        dropped: snapshot.dropped,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_a_decoded_snapshot_equals_merging_the_original(
        (a, b, fingerprint) in two_snapshots(),
    ) {
        let decoded = over_the_wire(&a, &fingerprint);
        prop_assert_eq!(decoded.active_users, a.active_users);
        prop_assert_eq!(snapshot_view(&decoded), snapshot_view(&a));

        let mut expected = a.clone();
        expected.merge(&b);
        let mut merged = decoded;
        merged.merge(&b);
        prop_assert_eq!(snapshot_view(&merged), snapshot_view(&expected));
    }

    /// The coordinator's side: its totals absorb the decoded snapshot.
    #[test]
    fn totals_absorb_a_decoded_snapshot_like_the_original(
        (a, b, fingerprint) in two_snapshots(),
    ) {
        let mut expected = b.clone();
        expected.merge(&a);
        let mut merged = b;
        merged.merge(&over_the_wire(&a, &fingerprint));
        prop_assert_eq!(snapshot_view(&merged), snapshot_view(&expected));
    }
}

/// A plan with `metrics` steps named `step 0`, `step 1`… in either model.
fn plan(metrics: usize, open: bool) -> Plan {
    let load = if open { "rate = 10" } else { "users = 1" };
    let steps: String = (0..metrics)
        .map(|i| format!("  [[flow.step]]\n  name = \"step {i}\"\n  path = \"/{i}\"\n"))
        .collect();
    let text = format!(
        "[target]\nbase_url = \"http://127.0.0.1:9\"\n[load]\n{load}\nduration = \"10s\"\n[[flow]]\n{steps}"
    );
    let checked = loadctl::validate::check_text(
        Path::new("t.toml"),
        &text,
        &Overrides::default(),
        &Inputs::sealed(),
    );
    checked.plan.expect("a valid plan")
}

/// What several workers recorded, second by second: `[worker][second]`
/// holds one worker's requests of that second (every worker runs as many
/// seconds).
type Recorded = Vec<Vec<Vec<(Sample, u64)>>>;

fn workers_seconds(metrics: usize) -> impl Strategy<Value = Recorded> {
    (1usize..4).prop_flat_map(move |seconds| {
        let second = prop::collection::vec(request(metrics), 0..40);
        prop::collection::vec(prop::collection::vec(second, seconds), 1..4)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A coordinator's merge: each worker's second sent over the wire into
    /// one collector gives the totals, every step's figures and every
    /// second's latency percentiles of one recorder fed every sample.
    #[test]
    fn a_coordinator_merges_workers_into_the_figures_of_one_recorder(
        (open, metrics, recorded) in (any::<bool>(), 1usize..4)
            .prop_flat_map(|(open, metrics)| (Just(open), Just(metrics), workers_seconds(metrics))),
    ) {
        let plan = plan(metrics, open);
        let fingerprint = loadctl::plan::fingerprint(&plan);
        let seconds = recorded[0].len();
        let mut everything = Snapshot::new(metrics, open);
        let mut by_second = vec![Snapshot::new(metrics, open); seconds];
        let mut collector = Collector::new(&plan, false, Duration::from_secs(3));
        for worker in 0..recorded.len() {
            collector.join(worker as u64);
        }
        for (second, merged) in by_second.iter_mut().enumerate() {
            for (worker, seconds) in recorded.iter().enumerate() {
                let mut snapshot = Snapshot::new(metrics, open);
                for (sample, at_s) in &seconds[second] {
                    snapshot.record(sample, *at_s);
                    merged.record(sample, *at_s);
                    everything.record(sample, *at_s);
                }
                let decoded = over_the_wire(&snapshot, &fingerprint);
                collector.add(worker as u64, second as u64 + 1, decoded);
            }
        }
        let elapsed = seconds as f64;
        let timeline = ShareState::new(Slice::FULL_RANGE).timeline();
        let summary = collector.finish(&plan, crate::run_info(elapsed), &timeline);

        prop_assert_eq!(&summary.totals, &everything.total().stats("Aggregated", None, elapsed, &[]));
        prop_assert_eq!(summary.steps.len(), metrics);
        for ((step, metric), recorder) in summary.steps.iter().zip(&plan.metrics).zip(&everything.steps) {
            let expected = recorder.stats(&metric.name, metric.method.clone(), elapsed, &[]);
            prop_assert_eq!(step, &expected);
        }
        prop_assert_eq!(summary.series.len(), seconds);
        for (point, merged) in summary.series.iter().zip(&by_second) {
            let expected = merged.total().stats("", None, 1.0, &[]);
            prop_assert_eq!(point.requests, expected.requests);
            prop_assert_eq!(&point.latency_ms, &expected.latency_ms);
            prop_assert_eq!(&point.service_time_ms, &expected.service_time_ms);
        }
    }
}
