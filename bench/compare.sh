#!/usr/bin/env bash
# bench/compare.sh — dkvs against redis-server, side by side, on this machine.
#
# What it measures (see BENCHMARKS.md for why, and for the targets):
#   1. throughput, no persistence: redis-server --save '' --appendonly no  vs  dkvs sync = "never"
#        SET and GET at -P 16 and at -P 1 (50 clients, 100-byte values, 100,000 random keys)
#   2. throughput, fsync per write: redis-server --appendonly yes --appendfsync always
#        vs  dkvs sync = "always"; SET at -c 50 -P 1
#   3. 1,000,000 distinct 16-byte keys with 100-byte values, streamed in over one connection:
#        resident memory (VmRSS) of each server afterwards, then restart-to-first-PONG time
#        (redis replaying its AOF, appendfsync everysec; dkvs recovering its data dir,
#        sync = "batch" every 1000 ms), median of several restarts.
#
# The two servers run one after the other (redis, dkvs, redis, dkvs, …) so slow drift of the
# machine hits both alike, and each number in the table is a median over rounds. redis-benchmark
# runs on the same two cores as the server it measures.
#
# Knobs (environment):
#   BENCH_N=500000           requests per test at -P 1
#   BENCH_N_PIPELINED=2000000 requests per test at -P 16
#   BENCH_N_FSYNC=100000     requests per test in the fsync case
#   BENCH_ROUNDS=5           rounds (each server once per round)
#   BENCH_KEYS=1000000       keys loaded in the memory / restart case
#   BENCH_RESTARTS=3         restarts timed per server
#   BENCH_PIN=0              1: pin servers to CPU 0 and redis-benchmark to CPU 1 (taskset)
#   BENCH_SKIP_BUILD=0       1: use target/release/dkvs as it is
#   DKVS_BIN                 another dkvs binary (implies no build)
#   DKVS_SERVE_ARGS          extra arguments for `dkvs serve`, split on spaces
# dkvs inherits the environment, so e.g. TOKIO_WORKER_THREADS=1 runs it on one worker thread.
#
# Output goes to stdout and to bench/out/compare-<time>.txt.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

n_p1=${BENCH_N:-500000}
n_p16=${BENCH_N_PIPELINED:-2000000}
n_fsync=${BENCH_N_FSYNC:-100000}
rounds=${BENCH_ROUNDS:-5}
keys=${BENCH_KEYS:-1000000}
restarts=${BENCH_RESTARTS:-3}
pin=${BENCH_PIN:-0}
dkvs_bin=${DKVS_BIN:-target/release/dkvs}
read -r -a dkvs_args <<<"${DKVS_SERVE_ARGS:-}"

for tool in redis-server redis-cli redis-benchmark cargo awk ss; do
    command -v "$tool" >/dev/null || {
        echo "bench/compare.sh: $tool not found (apt-get install redis-server redis-tools)" >&2
        exit 1
    }
done

if [[ $pin == 1 ]]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
else
    server_cpu=()
    client_cpu=()
fi

# --- processes and cleanup --------------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dkvs-bench.XXXXXX")
pids=()

# Stops every server this script started (SHUTDOWN would need a live port; TERM always works:
# both servers shut down cleanly on it), then removes the temp folder. Runs on any exit,
# Ctrl-C included.
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/out
report=bench/out/compare-$(date +%Y%m%d-%H%M%S).txt
exec > >(tee "$report")

log() { echo "  .. $*" >&2; }

# A TCP port nobody listens on, below the ephemeral range so that client sockets in TIME_WAIT
# cannot hold it.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        if [[ -z $(ss -Htln "sport = :$p") ]]; then
            echo "$p"
            return
        fi
    done
}

now_ns() { date +%s%N; }

# wait_pong PORT PID TIMEOUT_S: polls PING until the answer is PONG (a loading redis answers
# -LOADING). Fails if the process dies or the time runs out.
wait_pong() {
    local port=$1 pid=$2 deadline=$(($(date +%s) + $3))
    while [[ $(redis-cli -p "$port" ping 2>/dev/null) != PONG ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        if (($(date +%s) > deadline)); then return 1; fi
        sleep 0.005
    done
}

# Sets $pid and $port.
start_redis() {
    local dir=$1
    shift
    mkdir -p "$dir"
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        "${server_cpu[@]}" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
            --daemonize no --logfile "$dir/redis.log" "$@" >/dev/null &
        pid=$!
        pids+=("$pid")
        if wait_pong "$port" "$pid" 600; then return 0; fi
        kill -KILL "$pid" 2>/dev/null || true # port taken in the meantime: try another
    done
    echo "redis-server did not start; its log ends with:" >&2
    tail -n 5 "$dir/redis.log" >&2
    exit 1
}

# dkvs_config SYNC FILE: a minimal config with the storage defaults (64 MiB segments, automatic
# compaction), unlike the stage file's teaching-sized 1 MiB segments.
dkvs_config() {
    {
        printf '[[nodes]]\nid = 1\nclient = "127.0.0.1:7001"\n\n[storage]\nsync = "%s"\n' "$1"
        if [[ $1 == batch ]]; then printf 'sync_interval_ms = 1000\n'; fi
    } >"$2"
}

# start_dkvs SYNC DIR [PORT]: sets $pid and $port. Without PORT it listens on port 0 and reads
# the port from the line dkvs prints once it serves.
start_dkvs() {
    local sync=$1 dir=$2 want=${3:-0}
    mkdir -p "$dir"
    dkvs_config "$sync" "$dir.toml"
    "${server_cpu[@]}" "$dkvs_bin" serve "${dkvs_args[@]}" --config "$dir.toml" \
        --listen "127.0.0.1:$want" --data-dir "$dir" >"$dir.stdout" 2>>"$dir.stderr" &
    pid=$!
    pids+=("$pid")
    port=
    for _ in $(seq 6000); do
        port=$(sed -n 's/^dkvs node [0-9]* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir.stdout")
        if [[ -n $port ]]; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "dkvs did not start; its stderr ends with:" >&2
    tail -n 5 "$dir.stderr" >&2
    exit 1
}

# stop PORT PID: SHUTDOWN, then wait for the process to exit (TERM after 30 s), and forget it.
stop() {
    redis-cli -p "$1" shutdown >/dev/null 2>&1 || true
    for _ in $(seq 600); do kill -0 "$2" 2>/dev/null || break; sleep 0.05; done
    kill -TERM "$2" 2>/dev/null || true
    wait "$2" 2>/dev/null || true
    local keep=() p
    for p in "${pids[@]}"; do [[ $p == "$2" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# CPU time (user + system) a process has used so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# bench PORT PID REQUESTS LABEL redis-benchmark-args...: runs redis-benchmark against the server
# PID listening on PORT; appends each test's ops/s to $tmp/results/LABEL.TEST and the server's
# CPU time per request (µs; REQUESTS = all requests of the run) to $tmp/results/LABEL.cpu.
bench() {
    local port=$1 pid=$2 requests=$3 label=$4 before
    shift 4
    before=$(cpu_ticks "$pid")
    "${client_cpu[@]}" redis-benchmark -p "$port" --csv "$@" >"$tmp/bench.csv" 2>&1 || {
        echo "redis-benchmark failed on $label:" >&2
        tail -n 5 "$tmp/bench.csv" >&2
        exit 1
    }
    awk -v t=$(($(cpu_ticks "$pid") - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        'BEGIN { printf "%.2f\n", t / hz * 1e6 / n }' >>"$tmp/results/$label.cpu"
    awk -F, -v label="$label" -v dir="$tmp/results" '{
        gsub(/"/, "")
        if ($1 == "SET" || $1 == "GET") print $2 >> (dir "/" label "." $1)
    }' "$tmp/bench.csv"
}

# The median of the numbers on stdin.
median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }'; }

mkdir -p "$tmp/results"

# CPU time the whole machine spent busy, in clock ticks (user nice system irq softirq); and
# "steal", time the hypervisor gave our virtual CPUs to someone else, and all time.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; }
all_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
# CPU time of this shell and its finished children (servers, redis-benchmark, redis-cli), in
# ticks, from a file that `times` wrote (it must run in this shell, not in a $(…) subshell).
own_ticks() {
    awk -v hz="$(getconf CLK_TCK)" '{
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } }
        END { printf "%d", t * hz }' "$1"
}

# --- build and describe the machine -----------------------------------------------------------

if [[ ${BENCH_SKIP_BUILD:-0} != 1 && -z ${DKVS_BIN:-} ]]; then
    log "cargo build --release"
    cargo build --release --quiet
fi

echo "# dkvs vs redis-server — bench/compare.sh"
echo
echo "date:          $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "dkvs:          commit $(git describe --always --dirty 2>/dev/null || echo unknown), src/ digest $(find src -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-12) ($(rustc --version))"
echo "redis-server:  $(redis-server --version | sed 's/^Redis server //')"
echo "cpus:          $(nproc) × $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "memory:        $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:        $(uname -sr)"
echo "pinning:       $(if [[ $pin == 1 ]]; then echo 'servers on CPU 0, redis-benchmark on CPU 1'; else echo 'none: redis-benchmark shares both cores with the server'; fi)"
echo "load average:  $(cut -d' ' -f1-3 /proc/loadavg) at start"
if [[ -n ${TOKIO_WORKER_THREADS:-}${DKVS_SERVE_ARGS:-} ]]; then
    echo "dkvs options:  TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-} DKVS_SERVE_ARGS=${DKVS_SERVE_ARGS:-}"
fi
echo "settings:      rounds=$rounds, -n $n_p16 at -P 16, -n $n_p1 at -P 1, -n $n_fsync with fsync, keys=$keys, restarts=$restarts"
echo

# --- 1. throughput without persistence ------------------------------------------------------

busy_start=$(busy_ticks)
steal_start=$(steal_ticks)
all_start=$(all_ticks)
times >"$tmp/times.start"
common=(-c 50 -d 100 -r 100000)
log "throughput, no persistence: starting redis-server and dkvs (sync = never)"
start_redis "$tmp/redis-nopersist" --save '' --appendonly no
redis_pid=$pid redis_port=$port
start_dkvs never "$tmp/dkvs-never"
dkvs_pid=$pid dkvs_port=$port

# Warm-up, not recorded: first connections, page faults, allocator growth.
for p in "$redis_port" "$dkvs_port"; do
    "${client_cpu[@]}" redis-benchmark -p "$p" -t set,get -n 20000 "${common[@]}" -P 16 -q >/dev/null
done
for r in $(seq "$rounds"); do
    log "round $r/$rounds"
    bench "$redis_port" "$redis_pid" $((2 * n_p16)) redis.p16 -t set,get -n "$n_p16" "${common[@]}" -P 16
    bench "$dkvs_port" "$dkvs_pid" $((2 * n_p16)) dkvs.p16 -t set,get -n "$n_p16" "${common[@]}" -P 16
    bench "$redis_port" "$redis_pid" $((2 * n_p1)) redis.p1 -t set,get -n "$n_p1" "${common[@]}" -P 1
    bench "$dkvs_port" "$dkvs_pid" $((2 * n_p1)) dkvs.p1 -t set,get -n "$n_p1" "${common[@]}" -P 1
done
dkvs_stats_never=$(redis-cli -p "$dkvs_port" stats | tr -d '\r' | tr '\n' ' ')
stop "$redis_port" "$redis_pid"
stop "$dkvs_port" "$dkvs_pid"

# --- 2. throughput with an fsync per acknowledged write --------------------------------------

log "throughput, fsync always: starting redis-server (appendfsync always) and dkvs (sync = always)"
start_redis "$tmp/redis-always" --save '' --appendonly yes --appendfsync always
redis_pid=$pid redis_port=$port
start_dkvs always "$tmp/dkvs-always"
dkvs_pid=$pid dkvs_port=$port
for r in $(seq "$rounds"); do
    log "round $r/$rounds"
    bench "$redis_port" "$redis_pid" "$n_fsync" redis.fsync -t set -n "$n_fsync" "${common[@]}" -P 1
    bench "$dkvs_port" "$dkvs_pid" "$n_fsync" dkvs.fsync -t set -n "$n_fsync" "${common[@]}" -P 1
done
stop "$redis_port" "$redis_pid"
stop "$dkvs_port" "$dkvs_pid"

# --- 3. memory after loading, and restart time ----------------------------------------------

# Exactly $keys distinct 16-byte keys (key:000000000042) with 100-byte values, as RESP.
log "generating $keys SET commands"
awk -v n="$keys" 'BEGIN {
    pad = sprintf("%88s", ""); gsub(/ /, "v", pad)
    for (i = 0; i < n; i++)
        printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$100\r\n%s%012d\r\n", i, pad, i
}' >"$tmp/load.resp"

# load NAME PORT: streams the file over one connection while reading the replies back (what
# `redis-cli --pipe` does; it is not used here because it ends its stream with an empty inline
# command, "\r\n", that dkvs rejects as a protocol error — see tests/interop/redis-tools.sh).
# Checks every reply is +OK and DBSIZE; prints the wall time in ms.
load() {
    local t0 t1 writer n
    t0=$(now_ns)
    exec 3<>"/dev/tcp/127.0.0.1/$2"
    cat "$tmp/load.resp" >&3 &
    writer=$!
    timeout 600 head -c $((keys * 5)) <&3 >"$tmp/load.replies" || true
    wait "$writer" || true
    exec 3>&-
    t1=$(now_ns)
    n=$(grep -c $'^+OK\r$' "$tmp/load.replies" || true)
    if [[ $n != "$keys" ]]; then
        echo "loading $1 failed: $n of $keys replies were +OK; first other: $(grep -v -m1 $'^+OK\r$' "$tmp/load.replies")" >&2
        exit 1
    fi
    n=$(redis-cli -p "$2" dbsize)
    if [[ $n != "$keys" ]]; then
        echo "$1 holds $n keys after loading, expected $keys" >&2
        exit 1
    fi
    echo $(((t1 - t0) / 1000000))
}

# Redis replays its AOF on start. Automatic AOF rewrites are off, so what it replays is the log
# of the load itself, as dkvs does (a rewrite would turn most of it into an RDB snapshot; that
# variant is timed separately below).
redis_aof=(--save '' --appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0)
log "loading $keys keys into redis-server (appendonly yes, everysec)"
start_redis "$tmp/redis-mem" "${redis_aof[@]}"
redis_pid=$pid redis_port=$port
redis_load_ms=$(load redis "$redis_port")
redis_rss=$(rss_kib "$redis_pid")
redis_used=$(redis-cli -p "$redis_port" info memory | tr -d '\r' | sed -n 's/^used_memory:\(.*\)/\1/p')
stop "$redis_port" "$redis_pid"

log "loading $keys keys into dkvs (sync = batch, 1000 ms)"
start_dkvs batch "$tmp/dkvs-mem"
dkvs_pid=$pid dkvs_port=$port
dkvs_load_ms=$(load dkvs "$dkvs_port")
dkvs_rss=$(rss_kib "$dkvs_pid")
stop "$dkvs_port" "$dkvs_pid"

redis_disk=$(du -sk "$tmp/redis-mem" | cut -f1)
dkvs_disk=$(du -sk "$tmp/dkvs-mem" | cut -f1)

# time_restart KIND: starts the server on its data, polls PING until PONG; prints ms and the
# RSS then; checks all keys are back.
time_restart() {
    local t0 t1 rss n
    port=$(free_port)
    t0=$(now_ns)
    case $1 in
    redis | redis-rdb)
        "${server_cpu[@]}" redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/redis-mem" \
            --daemonize no --logfile "$tmp/redis-mem/redis.log" "${redis_aof[@]}" >/dev/null &
        pid=$!
        ;;
    dkvs)
        "${server_cpu[@]}" "$dkvs_bin" serve "${dkvs_args[@]}" --config "$tmp/dkvs-mem.toml" \
            --listen "127.0.0.1:$port" --data-dir "$tmp/dkvs-mem" \
            >"$tmp/dkvs-mem.stdout" 2>>"$tmp/dkvs-mem.stderr" &
        pid=$!
        ;;
    esac
    pids+=("$pid")
    if ! wait_pong "$port" "$pid" 600; then
        echo "$1 did not come back after a restart" >&2
        exit 1
    fi
    t1=$(now_ns)
    rss=$(rss_kib "$pid")
    n=$(redis-cli -p "$port" dbsize)
    if [[ $n != "$keys" ]]; then
        echo "$1 holds $n keys after restart, expected $keys" >&2
        exit 1
    fi
    stop "$port" "$pid"
    echo "$(((t1 - t0) / 1000000)) $rss"
}

for r in $(seq "$restarts"); do
    log "restart $r/$restarts"
    time_restart redis >>"$tmp/results/restart.redis"
    time_restart dkvs >>"$tmp/results/restart.dkvs"
done

# The same redis data after BGREWRITEAOF: an RDB-format base file, which Redis loads faster.
log "redis BGREWRITEAOF, then $restarts more restarts"
start_redis "$tmp/redis-mem" "${redis_aof[@]}"
redis-cli -p "$port" bgrewriteaof >/dev/null
while redis-cli -p "$port" info persistence | tr -d '\r' |
    grep -Eq '^aof_rewrite_(in_progress|scheduled):1'; do sleep 0.1; done
stop "$port" "$pid"
for r in $(seq "$restarts"); do
    time_restart redis-rdb >>"$tmp/results/restart.redis-rdb"
done

# --- the table ----------------------------------------------------------------------------------

# How much CPU went to processes other than ours while we measured: a busy neighbour (a build,
# a test suite) skews every number above, and not evenly.
times >"$tmp/times.end"
foreign_s=$(awk -v b=$(($(busy_ticks) - busy_start)) \
    -v o=$(($(own_ticks "$tmp/times.end") - $(own_ticks "$tmp/times.start"))) \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { f = (b - o) / hz; printf "%.0f", (f < 0 ? 0 : f) }')

col() { cut -d' ' -f"$2" "$tmp/results/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
# verdict RATIO TARGET higher|lower
verdict() {
    awk -v r="$1" -v t="$2" -v w="$3" 'BEGIN {
        ok = (w == "higher") ? (r >= t) : (r <= t)
        printf "%s %s %.1fx", (ok ? "met    " : "NOT met"), (w == "higher" ? ">=" : "<="), t }'
}

echo "## Throughput (ops/s, median of $rounds rounds; lowest-highest in brackets)"
echo
printf '| %-34s | %-26s | %-26s | %-11s | %-16s |\n' case redis-server dkvs "dkvs/redis" target
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..28})" \
    "$(printf -- '-%.0s' {1..28})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..18})"
row() { # name redis-file dkvs-file
    local rm dm
    rm=$(median <"$tmp/results/$2")
    dm=$(median <"$tmp/results/$3")
    local rr
    rr=$(ratio "$dm" "$rm")
    printf '| %-34s | %8.0f (%15s) | %8.0f (%15s) | %-11s | %-16s |\n' "$1" \
        "$rm" "$(spread <"$tmp/results/$2")" "$dm" "$(spread <"$tmp/results/$3")" \
        "$rr" "$(verdict "$rr" 1.0 higher)"
}
row "SET -P 16, no persistence / never" redis.p16.SET dkvs.p16.SET
row "GET -P 16, no persistence / never" redis.p16.GET dkvs.p16.GET
row "SET -P 1, no persistence / never" redis.p1.SET dkvs.p1.SET
row "GET -P 1, no persistence / never" redis.p1.GET dkvs.p1.GET
row "SET -P 1, fsync always / always" redis.fsync.SET dkvs.fsync.SET
echo
echo "All at -c 50 -d 100 -r 100000. dkvs stats after the no-persistence rounds: $dkvs_stats_never"
echo
echo "Server CPU time per request, µs (user + system, median of $rounds rounds; SET and GET runs together):"
echo
printf '| %-20s | %-12s | %-12s | %-11s |\n' run redis-server dkvs "dkvs/redis"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..22})" "$(printf -- '-%.0s' {1..14})" \
    "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..13})"
for run in "p16:-P 16" "p1:-P 1" "fsync:-P 1 fsync"; do
    rc=$(median <"$tmp/results/redis.${run%%:*}.cpu")
    dc=$(median <"$tmp/results/dkvs.${run%%:*}.cpu")
    printf '| %-20s | %12.2f | %12.2f | %-11s |\n' "${run#*:}" "$rc" "$dc" "$(ratio "$dc" "$rc")"
done
echo

echo "## $keys keys (16-byte keys, 100-byte values)"
echo
r_restart=$(col restart.redis 1 | median)
d_restart=$(col restart.dkvs 1 | median)
rdb_restart=$(col restart.redis-rdb 1 | median)
mem_ratio=$(ratio "$dkvs_rss" "$redis_rss")
restart_ratio=$(ratio "$d_restart" "$r_restart")
printf '| %-44s | %-14s | %-14s | %-11s | %-16s |\n' measure redis-server dkvs "dkvs/redis" target
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..16})" \
    "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..18})"
printf '| %-44s | %10.1f MiB | %10.1f MiB | %-11s | %-16s |\n' "resident memory (VmRSS) after loading" \
    "$(awk -v k="$redis_rss" 'BEGIN { print k / 1024 }')" "$(awk -v k="$dkvs_rss" 'BEGIN { print k / 1024 }')" \
    "$mem_ratio" "$(verdict "$mem_ratio" 0.5 lower)"
printf '| %-44s | %10.1f MiB | %10.1f MiB | %-11s | %-16s |\n' "resident memory after a restart (median)" \
    "$(col restart.redis 2 | median | awk '{ print $1 / 1024 }')" \
    "$(col restart.dkvs 2 | median | awk '{ print $1 / 1024 }')" \
    "$(ratio "$(col restart.dkvs 2 | median)" "$(col restart.redis 2 | median)")" ""
printf '| %-44s | %10.0f ms  | %10.0f ms  | %-11s | %-16s |\n' "restart to first PONG (median of $restarts)" \
    "$r_restart" "$d_restart" "$restart_ratio" "$(verdict "$restart_ratio" 0.5 lower)"
printf '| %-44s | %10.0f ms  | %10s     | %-11s | %-16s |\n' "  redis after BGREWRITEAOF (RDB base file)" \
    "$rdb_restart" "" "$(ratio "$d_restart" "$rdb_restart")" "(for reference)"
printf '| %-44s | %10.0f ms  | %10.0f ms  | %-11s | %-16s |\n' "load over one pipelined connection (one run)" \
    "$redis_load_ms" "$dkvs_load_ms" "$(ratio "$redis_load_ms" "$dkvs_load_ms")" "(speed ratio)"
printf '| %-44s | %10.1f MiB | %10.1f MiB | %-11s | %-16s |\n' "on disk after loading" \
    "$(awk -v k="$redis_disk" 'BEGIN { print k / 1024 }')" "$(awk -v k="$dkvs_disk" 'BEGIN { print k / 1024 }')" \
    "$(ratio "$dkvs_disk" "$redis_disk")" ""
echo
echo "redis used_memory after loading: $((redis_used / 1048576)) MiB (allocator's count, without fragmentation)."
echo "Restarts, ms and KiB RSS — redis: $(tr '\n' ';' <"$tmp/results/restart.redis") dkvs: $(tr '\n' ';' <"$tmp/results/restart.dkvs") redis (RDB base): $(tr '\n' ';' <"$tmp/results/restart.redis-rdb")"
echo "CPU used by other processes during the run: about ${foreign_s} s (kernel threads and the output tee included)."
echo "CPU time stolen by the hypervisor: $(awk -v s=$(($(steal_ticks) - steal_start)) \
    -v a=$(($(all_ticks) - all_start)) 'BEGIN { printf "%.1f", (a > 0 ? 100 * s / a : 0) }') % of all CPU time."
if ((foreign_s > 20)); then
    echo "WARNING: something else was busy on this machine; treat these numbers as unreliable."
fi
echo
echo "report saved as $report" >&2
