#!/usr/bin/env bash
# The coordinator's cost per worker: CPU and memory of a coordinator process
# serving simulated workers (benches/coordinator_load.rs) that register,
# heartbeat every second and send one realistic snapshot a second each
# (3 steps, 3,000 samples a second per worker), as real workers do.
#
#   bash benches/coordinator.sh [WORKERS] [SECONDS]   # default 100 workers, 30 s
#
# Prints the coordinator's CPU (share of one core) over the run, and its
# resident memory idle and at the end of the run, per worker. Loopback only.
source "$(dirname "$0")/lib.sh"

workers=${1:-100}
seconds=${2:-30}
build_loadctl
(cd "$REPO_DIR" && cargo build --release --quiet --bench coordinator_load)
sim=$(ls -t "$REPO_DIR"/target/release/deps/coordinator_load-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
port=$((20000 + RANDOM % 10000))
"$LOADCTL" coordinator --listen "127.0.0.1:$port" --store "$work/runs" 2> "$work/coordinator.log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
sleep 1

# cpu_ticks PID: user + system clock ticks of the process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

idle_rss=$(rss_kib $pid)
start_ticks=$(cpu_ticks $pid)
start_ns=$(date +%s%N)
"$sim" "http://127.0.0.1:$port" "$workers" "$seconds"
end_ns=$(date +%s%N)
end_ticks=$(cpu_ticks $pid)
peak_rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
end_rss=$(rss_kib $pid)

awk -v t0="$start_ticks" -v t1="$end_ticks" -v hz="$hz" -v n0="$start_ns" -v n1="$end_ns" \
    -v w="$workers" -v idle="$idle_rss" -v peak="$peak_rss" -v end="$end_rss" 'BEGIN {
    cpu = (t1 - t0) / hz; wall = (n1 - n0) / 1e9;
    printf "workers %d, wall %.1f s (incl. waiting for them and the 3 s start lead)\n", w, wall;
    printf "coordinator CPU: %.2f s = %.1f%% of one core; %.3f%% of a core per worker\n", cpu, 100*cpu/wall, 100*cpu/wall/w;
    printf "coordinator memory: idle %.1f MiB, after the run %.1f MiB, peak %.1f MiB; %.0f KiB per worker (peak - idle)\n", idle/1024, end/1024, peak/1024, (peak-idle)/w;
}'
grep -c "joined" "$work/coordinator.log" | xargs echo "workers that joined:"
