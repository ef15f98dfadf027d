#!/usr/bin/env bash
# tokio's two runtime flavours under loadctl's engine, side by side:
# a current-thread runtime per generator thread (what `loadctl run` does)
# against one multi-threaded runtime, with 1 thread pinned to core 1 and
# with 2 threads on both cores (sharing core 0 with nginx). nginx runs on core 0 without an access log; 50
# connections keep a plain GET busy for 5 s (see benches/runtime_flavors.rs).
#
#   bash benches/runtime-flavors.sh            # about 2 minutes
#   ROUNDS=5 bash benches/runtime-flavors.sh   # rounds (default 3; odd)
#
# The flavours take turns, round after round, and the table gives each
# one's median round by requests per CPU-second. Not part of `cargo test`.
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}

bench_with_nginx off
BENCH=$(cd "$REPO_DIR" && cargo build --release --quiet --bench runtime_flavors --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "runtime_flavors" and m.get("executable"):
        print(m["executable"])')

# one NAME CPUS FLAVOR THREADS: one run under /usr/bin/time; prints
# "NAME|requests|wall|cpu".
one() {
    local name=$1 cpus=$2 flavor=$3 threads=$4
    /usr/bin/time -f "%e %U %S" -o "$work/time" taskset -c "$cpus" \
        "$BENCH" "http://127.0.0.1:$port/" "$flavor" "$threads" "$CONNECTIONS" "$DURATION" > "$work/out"
    read -r wall user sys < <(tail -n 1 "$work/time")
    echo "$name|$(cat "$work/out")|$wall|$(python3 -c "print($user + $sys)")"
}

for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS..." >&2
    one "current-thread, 1 thread (core 1)" 1 current 1
    one "multi-threaded, 1 worker (core 1)" 1 multi 1
    one "current-thread, 2 threads (cores 0-1)" 0,1 current 2
    one "multi-threaded, 2 workers (cores 0-1)" 0,1 multi 2
done > "$work/rows"

echo "## Runtime flavours: $CONNECTIONS connections, plain GET, ${DURATION} s, medians of $ROUNDS rounds"
echo
python3 - "$work/rows" <<'PY'
import sys
runs = {}
for line in open(sys.argv[1]):
    name, requests, wall, cpu = line.strip().split("|")
    runs.setdefault(name, []).append((int(requests) / float(cpu), int(requests) / float(wall), float(cpu)))
print("| runtime | req/s | CPU s | req per CPU-s (median) | range over rounds |")
print("|---|---:|---:|---:|---:|")
for name, rs in runs.items():
    rs.sort()
    per_cpu, rps, cpu = rs[len(rs) // 2]
    print(f"| {name} | {rps:.0f} | {cpu:.2f} | {per_cpu:.0f} | {rs[0][0]:.0f}–{rs[-1][0]:.0f} |")
PY
