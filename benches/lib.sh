# Shared helpers for the benchmark scripts (sourced, not run).
# Everything here listens on and sends to 127.0.0.1 only.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
LOADCTL="$REPO_DIR/target/release/loadctl"

# Builds loadctl in release mode.
build_loadctl() {
    (cd "$REPO_DIR" && cargo build --release --quiet)
}

# Installs nginx from the distribution if it is missing.
ensure_nginx() {
    if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
        echo "installing nginx..." >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# start_nginx DIR PORT CORE [LOG]: one nginx worker pinned to CORE,
# serving a small body on 127.0.0.1:PORT, logging one line per request to
# DIR/access.log (so the server-side count is `wc -l`). LOG=off turns the
# log off, so the server has more headroom when the generator is measured.
start_nginx() {
    local dir=$1 port=$2 core=$3 log=${4:-on}
    local access_log="access_log $dir/access.log;"
    [ "$log" = off ] && access_log="access_log off;"
    mkdir -p "$dir"
    # nginx's workers run as an unprivileged user: the folders it serves
    # from (mktemp makes them 0700) must be readable, or every answer is 403.
    chmod 755 "$dir" "$(dirname "$dir")"
    printf 'hello from nginx\n' > "$dir/index.html"
    chmod 644 "$dir/index.html"
    cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
daemon on;
events { worker_connections 20000; }
http {
    $access_log
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / { root $dir; }
    }
}
CONF
    taskset -c "$core" "$NGINX" -c "$dir/nginx.conf" -p "$dir"
    for _ in $(seq 50); do
        curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "nginx did not start; see $dir/error.log" >&2
    return 1
}

# bench_with_nginx [LOG]: builds loadctl, installs nginx if missing and
# starts it on core 0 for the rest of the script. Sets $work (a scratch
# folder) and $port (nginx's), and stops nginx when the script exits.
bench_with_nginx() {
    build_loadctl
    ensure_nginx
    work=$(mktemp -d)
    port=$(free_port)
    trap 'stop_nginx "$work/nginx"' EXIT
    start_nginx "$work/nginx" "$port" 0 "${1:-on}"
}

stop_nginx() {
    local dir=$1
    [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
}

# Requests nginx has logged so far.
nginx_count() {
    wc -l < "$1/access.log"
}

# require_no_failures SUMMARY.json: a benchmark of failed requests measures
# nothing; stop with the reason rather than print figures.
require_no_failures() {
    python3 - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["totals"]
if t["failures"]:
    sys.exit(f"{sys.argv[1]}: {t['failures']} of {t['requests']} requests failed "
             f"({t['errors']}, e.g. {s['failures'][0]['message']}); fix the setup first")
PY
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
