#!/usr/bin/env bash
# Memory over a long run: loadctl's resident set size, sampled every 30 s
# during a 10-minute open-model run at 20,000 req/s against nginx on
# loopback. Flat memory means the RSS at 10 minutes is about the RSS at 1.
#
#   bash benches/soak-memory.sh              # 10 minutes
#   SOAK=2m RATE=5000 bash benches/soak-memory.sh
source "$(dirname "$0")/lib.sh"

SOAK=${SOAK:-10m}
RATE=${RATE:-20000}
bench_with_nginx
cat > "$work/soak.toml" <<TOML
name = "soak memory"
[target]
base_url = "http://127.0.0.1:$port"
[load]
model = "open"
rate = $RATE
max_users = 200
duration = "$SOAK"
[[flow]]
  [[flow.step]]
  name = "get"
  path = "/?id={{ random(1, 1000000) }}"
TOML
taskset -c 1 "$LOADCTL" run "$work/soak.toml" --threads 1 -q -o "$work/out" >/dev/null 2>&1 &
pid=$!
echo "| elapsed (s) | RSS (MB) |"
echo "|---:|---:|"
elapsed=0
while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    elapsed=$((elapsed + 30))
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && printf '| %d | %.1f |\n' "$elapsed" "$(echo "$rss / 1024" | bc -l)"
done
wait "$pid" || true
require_no_failures "$work/out/summary.json"
python3 - "$work/out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["totals"]
print(f"\nrequests {t['requests']}, failures {t['failures']}, achieved {s['achieved_rate']:.1f}/s, "
      f"dropped {s['dropped']}, p99 {t['latency_ms']['p99']:.2f} ms")
PY
