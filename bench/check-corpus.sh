#!/usr/bin/env bash
# bench/check-corpus.sh — how long `dkvs check --model linearizable` takes over the Porcupine
# corpus in tests/data/porcupine (102 Jepsen etcd histories, 6 key-value histories), as a whole
# process, median of several runs (hyperfine). Two figures, side by side in one run:
#   verdicts       --shrink-steps 0: decide every history, explain nothing
#   explanations   the default: also shrink each violation and describe it
# Then the peak memory (max RSS) of the largest history.
#
# Knobs: BENCH_RUNS=20 (hyperfine runs per command), BENCH_SKIP_BUILD=1, DKVS_BIN.
# Output also goes to bench/out/check-corpus-<time>.txt.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
runs=${BENCH_RUNS:-20}
bin=${DKVS_BIN:-target/release/dkvs}
if [[ -z "${DKVS_BIN:-}" && "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --quiet
fi
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }

mkdir -p bench/out
out=bench/out/check-corpus-$(date +%Y%m%d-%H%M%S).txt
json=$(mktemp)
trap 'rm -f "$json"' EXIT

files=(tests/data/porcupine/jepsen-etcd/*.log tests/data/porcupine/kv/*.txt)
{
    echo "# ${#files[@]} histories, $runs runs each, $(nproc) cores"
    # -i: the corpus holds violations, so `dkvs check` exits 1 by design.
    hyperfine -N -i --warmup 2 --runs "$runs" --export-json "$json" \
        -n verdicts "$bin check --shrink-steps 0 ${files[*]}" \
        -n explanations "$bin check ${files[*]}" >/dev/null
    python3 - "$json" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
for r in results:
    t = sorted(r["times"])
    print(f"{r['command']:<13} median {statistics.median(t):.3f} s   min {t[0]:.3f} s   max {t[-1]:.3f} s")
PY
    for f in tests/data/porcupine/kv/c50-bad.txt tests/data/porcupine/kv/c50-ok.txt; do
        /usr/bin/time -f "$(basename "$f"): %e s, max RSS %M KiB" "$bin" check "$f" >/dev/null 2>/tmp/check-corpus-time || true
        tail -1 /tmp/check-corpus-time
    done
} | tee "$out"
