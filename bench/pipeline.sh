#!/usr/bin/env bash
# bench/pipeline.sh — pipelined writes on a follower of the sequencer while flow control holds
# numbers back: `redis-benchmark -P 16` against node 2 of a three-node sequential cluster with a
# small log, so that the sequencer keeps hitting the flow-control margin.
#
#   bench/pipeline.sh                          # this tree's release build
#   bench/pipeline.sh old=/tmp/dkvs-old new=target/release/dkvs    # side by side
#
# Each round runs every binary once, in turn, on a fresh cluster; the table shows medians.
# Knobs (environment): BENCH_ROUNDS=3, BENCH_REQUESTS=100000, BENCH_PIPELINE=16,
# BENCH_CLIENTS=20, BENCH_LOG_CAPACITY=512, BENCH_SYNC=always, BENCH_SKIP_BUILD=0.
# Output goes to stdout and to bench/out/pipeline-<time>.txt. Needs redis-benchmark, redis-cli.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

rounds=${BENCH_ROUNDS:-3}
requests=${BENCH_REQUESTS:-100000}
pipeline=${BENCH_PIPELINE:-16}
clients=${BENCH_CLIENTS:-20}
log_capacity=${BENCH_LOG_CAPACITY:-512}
sync=${BENCH_SYNC:-always}

if (($# == 0)); then
    set -- "this=target/release/dkvs"
    if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
        cargo build --release -q -p dkvs
    fi
fi
names=()
declare -A bins
for arg in "$@"; do
    names+=("${arg%%=*}")
    bins[${arg%%=*}]=${arg#*=}
done

tmp=$(mktemp -d)
group=
source "$root/bench/lib.sh"
trap 'stop_group; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/out
exec > >(tee "bench/out/pipeline-$(date +%Y%m%d-%H%M%S).txt")

# start BINARY: a fresh cluster; sets follower (node 2's client port).
start() {
    local dir=$tmp/cluster i ports
    rm -rf "$dir"
    mkdir -p "$dir/data"
    read -r -a ports <<<"$(free_ports 6)"
    {
        printf 'mode = "sequential"\ntob = "sequencer"\n'
        for i in 1 2 3; do
            printf '\n[[nodes]]\nid = %d\nclient = "127.0.0.1:%d"\npeer = "127.0.0.1:%d"\n' \
                "$i" "${ports[i - 1]}" "${ports[i + 2]}"
        done
        printf '\n[storage]\ndata_dir = "%s"\nsync = "%s"\n\n[replication]\nlog_capacity = %d\n' \
            "$dir/data" "$sync" "$log_capacity"
    } >"$dir/dkvs.toml"
    setsid "$1" cluster "$dir/dkvs.toml" >"$dir/log" 2>&1 &
    group=$!
    wait_ready "$dir/log" "${ports[@]:0:3}"
    follower=${ports[1]}
}

declare -A rate p50
for round in $(seq "$rounds"); do
    for name in "${names[@]}"; do
        echo "  .. round $round: $name" >&2
        start "${bins[$name]}"
        row=$(redis-benchmark -p "$follower" -P "$pipeline" -c "$clients" -t set -n "$requests" \
            -r 100000 -q --csv 2>/dev/null | grep '^"SET"' || echo '"SET","0","-","-","-"')
        rate[$name]+="$(echo "$row" | cut -d, -f2 | tr -d '"') "
        p50[$name]+="$(echo "$row" | cut -d, -f5 | tr -d '"') "
        stop_group
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

echo "sequential over the sequencer, 3 nodes, log_capacity = $log_capacity, sync = \"$sync\";"
echo "redis-benchmark -P $pipeline -c $clients -t set -n $requests on node 2; $rounds rounds (medians)"
echo
printf '| %-10s | %12s | %12s | %s\n' binary "SET/s" "p50 ms" "runs (SET/s)"
printf '|%s|%s|%s|%s\n' "------------" "-------------:" "-------------:" "---"
for name in "${names[@]}"; do
    printf '| %-10s | %12s | %12s | %s\n' "$name" "$(echo "${rate[$name]}" | median)" \
        "$(echo "${p50[$name]}" | median)" "${rate[$name]}"
done
