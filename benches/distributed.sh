#!/usr/bin/env bash
# Throughput of a distributed run with 1, 2 and 3 workers on this machine:
# nginx on core 0, the coordinator and the workers on core 1, a plain GET
# with 50 users for 15 s. On a 2-core machine the workers share one core,
# so this shows what distributing costs, not what more machines add.
#
#   bash benches/distributed.sh
#
# Prints, per worker count, the merged requests per second and nginx's
# own count (which must equal the merged count). Loopback only.
source "$(dirname "$0")/lib.sh"

bench_with_nginx on
cat > "$work/plain.toml" <<TOML
[target]
base_url = "http://127.0.0.1:$port"
[load]
users = 50
duration = "15s"
[[flow]]
  [[flow.step]]
  path = "/"
TOML
coordinator_port=$(free_port)
for workers in 1 2 3; do
    pids=()
    for i in $(seq "$workers"); do
        taskset -c 1 "$LOADCTL" worker --coordinator "http://127.0.0.1:$coordinator_port" \
            --name "w$i" --threads 1 2> "$work/worker$i.log" &
        pids+=($!)
    done
    before=$(nginx_count "$work/nginx")
    taskset -c 1 "$LOADCTL" coordinator --listen "127.0.0.1:$coordinator_port" --store "$work/runs" \
        --expect-workers "$workers" "$work/plain.toml" --out "$work/out$workers" --force -q \
        > /dev/null 2> "$work/coordinator$workers.log"
    after=$(nginx_count "$work/nginx")
    kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
    require_no_failures "$work/out$workers/summary.json"
    python3 - "$work/out$workers/summary.json" "$workers" $((after - before)) <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["totals"]
print(f"{sys.argv[2]} worker(s): {t['rps']:.0f} req/s merged, p50 {t['latency_ms']['p50']} ms, "
      f"p99 {t['latency_ms']['p99']} ms; requests {t['requests']}, nginx saw {sys.argv[3]}")
PY
done
