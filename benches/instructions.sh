#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: a figure the
# machine's noise does not move, for telling whether a change to the hot
# path made it cheaper. User space only; the kernel's share is not counted.
#
#   bash benches/instructions.sh     # about 4 minutes with the release build
#
# Like the other scripts it needs two cores (nginx on core 0, loadctl on
# core 1) and installs what is missing with apt-get (valgrind, nginx).
#
# Each scenario (the plain GET and the realistic one of compare.sh, 50
# users) runs for 10,000 and for 30,000 iterations against nginx on
# loopback; the difference divided by 20,000 leaves start-up and the
# report out. Not part of `cargo test`.
source "$(dirname "$0")/lib.sh"

if ! command -v valgrind >/dev/null; then
    echo "installing valgrind..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
bench_with_nginx off
printf '{"items": [{"id": 7, "name": "seven"}], "page": 1}\n' > "$work/nginx/items.json"
chmod 644 "$work/nginx/items.json"

# scenario FILE ITERATIONS PATH EXTRA
scenario() {
    cat > "$1" <<TOML
[target]
base_url = "http://127.0.0.1:$port"
[load]
users = 50
iterations = $2
duration = "10m"
[[flow]]
  [[flow.step]]
  path = "$3"
$4
TOML
}

# instructions NAME PATH EXTRA: prints "NAME: N instructions per request".
instructions() {
    local name=$1 total=()
    for n in 10000 30000; do
        scenario "$work/$name-$n.toml" "$n" "$2" "$3"
        taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$work/$name-$n.cg" \
            "$LOADCTL" run "$work/$name-$n.toml" --threads 1 -q -o "$work/$name-$n" >/dev/null 2>"$work/$name-$n.err"
        require_no_failures "$work/$name-$n/summary.json"
        total+=("$(awk '/^summary:/ {print $2}' "$work/$name-$n.cg")")
    done
    echo "$name: $(( (total[1] - total[0]) / 20000 )) instructions per request"
}

instructions "plain GET" "/" ""
instructions "realistic" "/items.json?page={{ random(1, 100) }}" \
    '  headers = { "X-Request-Id" = "{{ vu }}-{{ iteration }}" }
  expect = { status = [200] }
  extract = { first = { json = "/items/0/id" } }'
