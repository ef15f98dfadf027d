//! Micro-benchmarks of the per-request hot paths: recording a sample,
//! merging snapshots, rendering a template, building a request, extracting
//! a JSON value, and computing arrival instants. `cargo bench --bench hot_paths`; they
//! measure, they assert nothing, and `cargo test` does not run them.

use std::path::Path;
use std::sync::Arc;

use loadctl::diag::Diagnostics;
use loadctl::engine::{self, Connector};
use loadctl::metrics::{ErrorKind, Sample, Snapshot};
use loadctl::plan::{self, BaseUrl, Overrides, Plan};
use loadctl::scenario;
use loadctl::schedule::{Arrivals, Pattern};

fn main() {
    divan::main();
}

fn sample(i: u64) -> Sample {
    Sample {
        metric: (i % 3) as usize,
        latency_us: 200 + (i * 7919) % 20_000,
        service_us: 200 + (i * 7919) % 20_000,
        status: Some(200),
        failure: i.is_multiple_of(100).then(|| {
            (
                ErrorKind::Status,
                "status 500, expected 200-399".to_string(),
            )
        }),
        bytes_in: 512,
        bytes_out: 128,
        body_bytes: 300,
    }
}

/// Recording one request's result into a thread's snapshot.
#[divan::bench]
fn record_sample(bencher: divan::Bencher) {
    let mut snapshot = Snapshot::new(3, false);
    let samples: Vec<Sample> = (0..1024).map(sample).collect();
    let mut i = 0;
    bencher.bench_local(|| {
        snapshot.record(&samples[i % samples.len()], 1);
        i += 1;
    });
}

/// The once-a-second merge of a thread's snapshot into the run totals.
#[divan::bench]
fn merge_snapshot(bencher: divan::Bencher) {
    let mut second = Snapshot::new(3, false);
    for i in 0..10_000 {
        second.record(&sample(i), 1);
    }
    let mut totals = Snapshot::new(3, false);
    bencher.bench_local(|| totals.merge(&second));
}

const SCENARIO: &str = r#"
[target]
base_url = "http://127.0.0.1:8080"
headers = { "X-Request-Id" = "{{ vu }}-{{ iteration }}" }
[load]
users = 1
duration = "1s"
[vars]
id = 1234
[[flow]]
  [[flow.step]]
  name = "static"
  path = "/items"
  [[flow.step]]
  name = "templated"
  path = "/items/{{ id }}?page={{ random(1, 10) }}"
"#;

fn compiled() -> Plan {
    let mut diags = Diagnostics::default();
    let s = scenario::parse(SCENARIO, &mut diags).expect("the bench scenario is TOML");
    let plan = plan::compile(
        &s,
        Some(Path::new("bench.toml")),
        &Overrides::default(),
        &plan::Inputs::for_cli(None, loadctl::diag::Severity::Error),
        &mut diags,
    );
    plan.unwrap_or_else(|| panic!("the bench scenario is invalid: {diags:?}"))
}

fn context() -> minijinja::Value {
    minijinja::context! { vu => 7, iteration => 42, id => 1234 }
}

/// Rendering a path template with a small context.
#[divan::bench]
fn render_template(bencher: divan::Bencher) {
    let plan = compiled();
    let part = &plan.flows[0].steps[1]
        .http()
        .expect("the bench step is HTTP")
        .path;
    let ctx = context();
    bencher.bench_local(|| plan.templates.render(part, &ctx).unwrap());
}

fn connector(plan: &Plan) -> Arc<Connector> {
    let BaseUrl::Url(endpoint) = &plan.target.base else {
        unreachable!()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Arc::new(
        runtime
            .block_on(Connector::new(endpoint.clone(), &plan.target))
            .unwrap(),
    )
}

/// Building a templated request: render path and headers, make the URI and
/// header map.
#[divan::bench]
fn build_templated_request(bencher: divan::Bencher) {
    let plan = compiled();
    let connector = connector(&plan);
    let step = &plan.flows[0].steps[1];
    let ctx = context();
    bencher.bench_local(|| {
        engine::prepare(&plan, &connector, step, &ctx)
            .unwrap()
            .into_request()
    });
}

/// Sending a static step's request: a clone of the prepared one.
#[divan::bench]
fn clone_prepared_request(bencher: divan::Bencher) {
    let plan = compiled();
    let connector = connector(&plan);
    let prepared = engine::prepare(&plan, &connector, &plan.flows[0].steps[0], &context()).unwrap();
    bencher.bench_local(|| prepared.request());
}

const ITEMS: &str = r#"{"items": [{"id": 7, "name": "seven"}, {"id": 8, "name": "eight"}], "page": 1, "next": "/items?page=2"}"#;

/// Extracting one value from a JSON body the way checks do: reading the
/// body and building only the value the pointer points at.
#[divan::bench]
fn extract_json_pointer(bencher: divan::Bencher) {
    let pointer = plan::JsonPointer::parse("/items/1/id").unwrap();
    bencher.bench_local(|| pointer.find_in(ITEMS.as_bytes()).unwrap());
}

/// The same, by building the whole document first (what checks did
/// before), for comparison.
#[divan::bench]
fn extract_json_whole_document(bencher: divan::Bencher) {
    bencher.bench_local(|| {
        let document: serde_json::Value = serde_json::from_str(ITEMS).unwrap();
        document.pointer("/items/1/id").cloned()
    });
}

/// Computing 10,000 arrival instants of a ramp.
#[divan::bench]
fn arrival_instants(bencher: divan::Bencher) {
    let s = std::time::Duration::from_secs;
    let shape = Pattern::Ramp {
        peak: 50_000.0,
        up: s(10),
        down: s(10),
        duration: s(60),
    }
    .shape();
    bencher.bench_local(|| {
        Arrivals::new(shape.clone(), Some(s(60)), 0.0)
            .take(10_000)
            .count()
    });
}
