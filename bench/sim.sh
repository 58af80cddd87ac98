#!/usr/bin/env bash
# bench/sim.sh — how fast the deterministic simulator runs: delivered messages per second of
# wall time, on one core, for each replicated mode of three nodes.
#
# Each round runs every case once, in turn (so that a noisy neighbour hurts all cases alike);
# the table shows the median over the rounds. A case is `dkvs sim` over BENCH_SEEDS seeds of
# BENCH_OPS operations each, without faults and without a check (the simulator alone; the
# checkers have their own benchmark, bench/check-corpus.sh), pinned to one core with taskset
# when it is there.
#
# Knobs (environment): BENCH_ROUNDS=5, BENCH_SEEDS=1..20, BENCH_OPS=5000, BENCH_SKIP_BUILD=0.
# Output goes to stdout and to bench/out/sim-<time>.txt.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

rounds=${BENCH_ROUNDS:-5}
seeds=${BENCH_SEEDS:-1..20}
ops=${BENCH_OPS:-5000}
mkdir -p bench/out
out="bench/out/sim-$(date +%Y%m%d-%H%M%S).txt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --quiet
fi
bin=target/release/dkvs
pin=()
if command -v taskset >/dev/null 2>&1; then
    pin=(taskset -c 0)
fi

# name | stage config | tob
cases=(
    "linearizable-sequencer|stages/04-linearizable/dkvs.toml|sequencer"
    "linearizable-lamport|stages/04-linearizable/dkvs.toml|lamport"
    "sequential-sequencer|stages/03-sequential/dkvs.toml|sequencer"
    "eventual|stages/02-eventual/dkvs.toml|sequencer"
)
for c in "${cases[@]}"; do
    IFS='|' read -r name config tob <<<"$c"
    sed -E "s/^tob = \"[a-z]+\"/tob = \"$tob\"/" "$config" >"$work/$name.toml"
done

for round in $(seq 1 "$rounds"); do
    for c in "${cases[@]}"; do
        IFS='|' read -r name _ _ <<<"$c"
        line=$("${pin[@]}" "$bin" sim --config "$work/$name.toml" --seeds "$seeds" --ops "$ops" \
            --check none | grep '^simulated')
        # "simulated N messages in S s of wall time (R M messages/s); ..."
        rate=$(sed -E 's/.*\(([0-9.]+) M messages\/s\).*/\1/' <<<"$line")
        echo "$rate" >>"$work/$name.rates"
        echo "round $round  $name  $rate M messages/s"
    done
done | tee "$out.raw"

{
    echo
    echo "dkvs sim, $seeds seeds x $ops operations, no faults, no check; median of $rounds rounds"
    printf '%-24s %s\n' case "M delivered messages/s (min..max)"
    for c in "${cases[@]}"; do
        IFS='|' read -r name _ _ <<<"$c"
        sort -n "$work/$name.rates" | awk -v name="$name" '
            { v[NR] = $1 }
            END {
                m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                printf "%-24s %.2f  (%.2f..%.2f)\n", name, m, v[1], v[NR]
            }'
    done
} | tee "$out"
rm -f "$out.raw"
