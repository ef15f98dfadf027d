#!/usr/bin/env bash
# Rate accuracy of the open model, and the per-second shape of every
# pattern, measured against nginx on loopback. Not part of `cargo test`:
# it takes about 2 minutes and its figures depend on the machine.
#
#   bash benches/rate-accuracy.sh            # all of it
#   RATES="1000 10000" bash benches/rate-accuracy.sh
#
# nginx runs on core 0, loadctl (one generator thread) on core 1. The
# server-side count is nginx's access log. Results go to stdout as
# Markdown tables (docs/performance.md keeps a copy).
source "$(dirname "$0")/lib.sh"

RATES=${RATES:-"1000 10000 50000"}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
bench_with_nginx

cat > "$work/rate.toml" <<TOML
name = "rate accuracy"
[target]
base_url = "http://127.0.0.1:$port"
timeout = "5s"
[load]
model = "open"
rate = 1000
max_users = 500
duration = "${SECONDS_PER_RUN}s"
[[flow]]
  [[flow.step]]
  name = "get"
  path = "/"
TOML

echo "## Open-model rate accuracy (${SECONDS_PER_RUN} s per run, 1 generator thread)"
echo
echo "| target req/s | expected | nginx saw | error | achieved req/s | dropped | p50 ms | p99 ms (corrected) | p99 ms (service) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rate in $RATES; do
    before=$(nginx_count "$work/nginx")
    taskset -c 1 "$LOADCTL" run "$work/rate.toml" --rate "$rate" --threads 1 -q -o "$work/out-$rate" >/dev/null 2>&1
    after=$(nginx_count "$work/nginx")
    require_no_failures "$work/out-$rate/summary.json"
    python3 - "$work/out-$rate/summary.json" "$rate" "$SECONDS_PER_RUN" "$((after - before))" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rate, secs, seen = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
expected = rate * secs
t = s["totals"]
print(f"| {rate:.0f} | {expected:.0f} | {seen} | {100 * (seen - expected) / expected:+.2f}% "
      f"| {s['achieved_rate']:.1f} | {s['dropped']} | {t['latency_ms'].get('p50', 0):.2f} "
      f"| {t['latency_ms'].get('p99', 0):.2f} | {t['service_time_ms'].get('p99', 0):.2f} |")
PY
done

echo
echo "## Pattern shapes (open model, per-second target vs started iterations)"
pattern_run() {
    local name=$1 load=$2
    cat > "$work/$name.toml" <<TOML
name = "$name"
[target]
base_url = "http://127.0.0.1:$port"
[load]
model = "open"
max_users = 200
$load
[[flow]]
  [[flow.step]]
  path = "/"
TOML
    before=$(nginx_count "$work/nginx")
    taskset -c 1 "$LOADCTL" run "$work/$name.toml" --threads 1 -q -o "$work/out-$name" >/dev/null 2>&1
    after=$(nginx_count "$work/nginx")
    require_no_failures "$work/out-$name/summary.json"
    python3 - "$work/out-$name/summary.json" "$name" "$((after - before))" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
name, seen = sys.argv[2], int(sys.argv[3])
series = s["series"]
planned = s["target_rate"] * s["run"]["duration_s"]
print(f"\n### {name}: planned {planned:.0f} iterations, started {sum(p['started'] for p in series)}, nginx saw {seen}, dropped {s['dropped']}\n")
print("| t (s) | " + " | ".join(str(p["t"]) for p in series) + " |")
print("|---|" + "---:|" * len(series))
print("| target/s | " + " | ".join(f"{p['target']:.0f}" for p in series) + " |")
print("| started | " + " | ".join(str(p["started"]) for p in series) + " |")
PY
}
pattern_run constant 'pattern = "constant"
rate = 500
duration = "10s"'
pattern_run ramp 'pattern = "ramp"
rate = 1000
ramp_up = "5s"
ramp_down = "5s"
duration = "15s"'
pattern_run stages 'pattern = "stages"
stages = [{ duration = "5s", target = 500 }, { duration = "5s", target = 500 }, { duration = "5s", target = 100 }]'
pattern_run spike 'pattern = "spike"
base = 200
peak = 2000
spike_at = "5s"
spike_ramp = "1s"
spike_hold = "3s"
duration = "15s"'
pattern_run wave 'pattern = "wave"
base = 500
amplitude = 400
period = "10s"
duration = "20s"'
pattern_run random 'pattern = "random"
min = 100
max = 1000
change_every = "2s"
seed = 42
duration = "20s"'
pattern_run burst 'pattern = "burst"
base = 100
burst = 1000
every = "5s"
burst_length = "1s"
duration = "15s"'
