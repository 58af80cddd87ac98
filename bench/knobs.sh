#!/usr/bin/env bash
# bench/knobs.sh — what each optimisation of the replicated modes buys: the same three-node
# cluster with one option switched off at a time, side by side.
#
# Variants (each a [replication] table appended to the generated config):
#   all-on        the defaults: step_batch = 256, send_batch = 256, peer_encoding = "msgpack"
#   no-step-batch step_batch = 1: one input per round, so one append and one fsync wait each
#   no-send-batch send_batch = 1: one message per call to a peer
#   json          peer_encoding = "json"
# Each round runs every variant once, in turn, on a fresh cluster; the table shows medians.
# Runs per variant: SET and GET at $BENCH_CLIENTS clients spread over the three nodes, and SET
# at one client on node 2 (latency), with bench/loadgen, as bench/replication.sh does.
#
# Knobs (environment): BENCH_MODE=linearizable, BENCH_TOB=sequencer, BENCH_ROUNDS=3,
# BENCH_DURATION_S=2, BENCH_CLIENTS=50, BENCH_KEYS=10000, BENCH_SKIP_BUILD=0.
# Output goes to stdout and to bench/out/knobs-<time>.txt. Needs redis-cli (for readiness).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=${BENCH_MODE:-linearizable}
tob=${BENCH_TOB:-sequencer}
rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION_S:-2}
clients=${BENCH_CLIENTS:-50}
keys=${BENCH_KEYS:-10000}
names=(all-on no-step-batch no-send-batch json)
tomls=(
    ''
    'step_batch = 1'
    'send_batch = 1'
    'peer_encoding = "json"'
)

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release -q -p dkvs -p dkvs-loadgen
fi
dkvs=target/release/dkvs
loadgen=target/release/loadgen

tmp=$(mktemp -d)
group=
source "$root/bench/lib.sh"
trap 'stop_group; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/out
exec > >(tee "bench/out/knobs-$(date +%Y%m%d-%H%M%S).txt")

# start VARIANT_TOML: a fresh cluster; sets addrs and follower.
start() {
    local dir=$tmp/cluster i
    rm -rf "$dir"
    mkdir -p "$dir/data"
    local ports cports
    read -r -a ports <<<"$(free_ports 6)"
    cports=("${ports[@]:0:3}")
    {
        printf 'mode = "%s"\ntob = "%s"\n' "$mode" "$tob"
        for i in 1 2 3; do
            printf '\n[[nodes]]\nid = %d\nclient = "127.0.0.1:%d"\npeer = "127.0.0.1:%d"\n' \
                "$i" "${cports[i - 1]}" "${ports[i + 2]}"
        done
        printf '\n[storage]\ndata_dir = "%s"\nsync = "always"\n\n[replication]\n%s\n' "$dir/data" "$1"
    } >"$dir/dkvs.toml"
    setsid "$dkvs" cluster "$dir/dkvs.toml" >"$dir/log" 2>&1 &
    group=$!
    wait_ready "$dir/log" "${cports[@]}"
    addrs=127.0.0.1:${cports[0]},127.0.0.1:${cports[1]},127.0.0.1:${cports[2]}
    follower=127.0.0.1:${cports[1]}
}

# load ADDRS OP CLIENTS: one CSV row from loadgen.
load() {
    "$loadgen" --target resp --addr "$1" --op "$2" --clients "$3" --duration-s "$duration" \
        --warmup-s 0.5 --keys "$keys" --value-size 100 --csv 2>/dev/null | tail -n 1 || true
}

declare -A set_rate get_rate lat
for round in $(seq "$rounds"); do
    for v in "${!names[@]}"; do
        name=${names[v]}
        echo "  .. round $round: $name" >&2
        start "${tomls[v]}"
        "$loadgen" --target resp --addr "$addrs" --op load --keys "$keys" --value-size 100 >/dev/null 2>&1 || true
        set_rate[$name]+="$(load "$addrs" set "$clients" | cut -d, -f6) "
        get_rate[$name]+="$(load "$addrs" get "$clients" | cut -d, -f6) "
        lat[$name]+="$(load "$follower" set 1 | cut -d, -f7) "
        stop_group
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

echo "mode = \"$mode\", tob = \"$tob\"; 3 nodes, sync = \"always\", $clients clients, 100-byte values, $rounds rounds (medians)"
echo
printf '| %-14s | %14s | %14s | %16s |\n' variant "SET ops/s" "GET ops/s" "SET 1 client p50"
printf '|%s|%s|%s|%s|\n' "----------------" "----------------:" "----------------:" "------------------:"
for name in "${names[@]}"; do
    printf '| %-14s | %14.0f | %14.0f | %13s ms |\n' "$name" \
        "$(median <<<"${set_rate[$name]}")" "$(median <<<"${get_rate[$name]}")" "$(median <<<"${lat[$name]}")"
done
