#!/usr/bin/env bash
# bench/replication.sh — three-node dkvs clusters in every replicated mode against a three-member
# etcd cluster, on this machine.
#
# What it measures (see BENCHMARKS.md, "Replication: dkvs clusters against etcd", for the goals):
#   single          one `dkvs serve` node, the yardstick for eventual mode
#   eventual        3 nodes, apply locally and broadcast
#   seq-sequencer   3 nodes, sequential, total order from a sequencer
#   seq-lamport     3 nodes, sequential, total order from Lamport clocks with acks
#   lin-sequencer   3 nodes, linearizable (reads through the order too), sequencer
#   lin-lamport     3 nodes, linearizable, Lamport clocks
#   etcd            3 members, Raft; Put, and Range with the default linearizable read
# Every dkvs node runs with [storage] sync = "always" (acknowledged = fsynced); etcd fsyncs its
# write-ahead log before it acknowledges a commit, by default.
#
# For each case the servers are started fresh in temporary folders on free ports, every key is
# written once (not recorded, so that reads find a value), then bench/loadgen — one connection
# per client, one request in flight per connection, clients spread round-robin over the three
# nodes — runs SET and GET at $BENCH_CLIENTS clients, for the linearizable modes and etcd SET
# and GET at $BENCH_ETCD_CLIENTS clients, and SET at one client (latency) on node 2 / an etcd
# follower, and also on the leader (the sequencer, node 1 / etcd's leader) where there is one.
# Each round runs every case once (dkvs and etcd alternate); the table shows medians over rounds.
#
# Knobs (environment):
#   BENCH_ROUNDS=3            rounds
#   BENCH_DURATION_S=2        recorded seconds per run
#   BENCH_WARMUP_S=0.5        unrecorded seconds of load before each run
#   BENCH_CLIENTS=50          clients of the main runs
#   BENCH_ETCD_CLIENTS=64     clients of the side-by-side runs with etcd
#   BENCH_VALUE_SIZE=100      bytes per value
#   BENCH_KEYS=10000          key space (every key is written before the runs)
#   BENCH_CASES="single eventual seq-sequencer seq-lamport lin-sequencer etcd lin-lamport"
#                             cases to run, in this order within a round
#   DKVS_EXTRA_TOML           text appended to every generated dkvs config (e.g. a
#                             "[replication]" table), to measure an option on and off
#   BENCH_SKIP_BUILD=0        1: use the release binaries as they are
#   DKVS_BIN, LOADGEN_BIN     other binaries (imply no build)
#
# Output goes to stdout and to bench/out/replication-<time>.txt.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION_S:-2}
warmup=${BENCH_WARMUP_S:-0.5}
clients=${BENCH_CLIENTS:-50}
etcd_clients=${BENCH_ETCD_CLIENTS:-64}
value_size=${BENCH_VALUE_SIZE:-100}
keys=${BENCH_KEYS:-10000}
read -r -a cases <<<"${BENCH_CASES:-single eventual seq-sequencer seq-lamport lin-sequencer etcd lin-lamport}"
extra_toml=${DKVS_EXTRA_TOML:-}
build=1
[[ ${BENCH_SKIP_BUILD:-0} == 1 || -n ${DKVS_BIN:-}${LOADGEN_BIN:-} ]] && build=0
dkvs_bin=${DKVS_BIN:-target/release/dkvs}
loadgen_bin=${LOADGEN_BIN:-target/release/loadgen}

for c in "${cases[@]}"; do
    case $c in
    single | eventual | seq-sequencer | seq-lamport | lin-sequencer | lin-lamport | etcd) ;;
    *)
        echo "bench/replication.sh: unknown case '$c' in BENCH_CASES" >&2
        exit 1
        ;;
    esac
done
need_etcd=0
[[ " ${cases[*]} " == *" etcd "* ]] && need_etcd=1
for tool in cargo redis-cli awk ss setsid; do
    command -v "$tool" >/dev/null || {
        echo "bench/replication.sh: $tool not found (redis-cli: apt-get install redis-tools)" >&2
        exit 1
    }
done
if ((need_etcd)); then
    for tool in etcd etcdctl; do
        command -v "$tool" >/dev/null || {
            echo "bench/replication.sh: $tool not found (apt-get install etcd-server etcd-client)" >&2
            exit 1
        }
    done
fi

problems=() # odd things seen on the way, listed at the end of the report

# --- processes and cleanup --------------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dkvs-replication.XXXXXX")
pids=()   # processes to stop with TERM (dkvs serve, etcd members)
groups=() # process groups to stop with INT (dkvs cluster and its nodes)

# Stops everything this script started, then removes the temp folder. A `dkvs cluster` runs in a
# process group of its own: SIGINT to the group reaches the nodes, which sync and exit, and the
# parent, which waits for them. Runs on any exit, Ctrl-C included.
cleanup() {
    local p
    for p in "${groups[@]}"; do kill -INT -- "-$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${groups[@]}" "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    for p in "${groups[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/out
report=bench/out/replication-$(date +%Y%m%d-%H%M%S).txt
exec > >(tee "$report")

log() { echo "  .. $*" >&2; }

source "$root/bench/lib.sh"

# wait_pong PORT PID TIMEOUT_S: polls PING until the answer is PONG; fails if PID dies first or
# the time runs out.
wait_pong() {
    local port=$1 pid=$2 deadline=$(($(date +%s) + $3))
    while [[ $(redis-cli -p "$port" ping 2>/dev/null) != PONG ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        if (($(date +%s) > deadline)); then return 1; fi
        sleep 0.02
    done
}

# wait_ready PORT PID TIMEOUT_S: polls STATS until the node says ready:true. A replicated node
# answers PING at once but refuses requests ("not ready: catching up") until it has heard from
# its peers (the sequencer, with tob = "sequencer").
wait_ready() {
    local port=$1 pid=$2 deadline=$(($(date +%s) + $3))
    while [[ $(redis-cli -p "$port" stats 2>/dev/null) != *ready:true* ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        if (($(date +%s) > deadline)); then return 1; fi
        sleep 0.02
    done
}

forget() { # PID: drops it from pids and groups
    local keep=() p
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
    keep=()
    for p in "${groups[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    groups=("${keep[@]}")
}

# After each start: the servers' processes (for CPU accounting), the loadgen target and
# addresses, and for the single-client runs a node that leads (the sequencer, node 1; etcd's
# leader) and one that does not (node 2; an etcd follower). In eventual and Lamport mode no
# node leads: node 2 is just another node.
server_pids=()
addrs=
target=
leader=
follower=

# start_single DIR: `dkvs serve` on a port it picks itself.
start_single() {
    local dir=$1 pid port=
    mkdir -p "$dir/data"
    {
        printf 'mode = "single"\n\n[[nodes]]\nid = 1\nclient = "127.0.0.1:7001"\n\n'
        printf '[storage]\ndata_dir = "%s"\nsync = "always"\n' "$dir/data"
        printf '%s\n' "$extra_toml"
    } >"$dir/dkvs.toml"
    "$dkvs_bin" serve --config "$dir/dkvs.toml" --listen 127.0.0.1:0 --data-dir "$dir/data" \
        >"$dir/stdout" 2>"$dir/stderr" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 600); do
        port=$(sed -n 's/^dkvs node [0-9]* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/stdout")
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z $port ]]; then
        echo "dkvs serve did not start; its stderr ends with:" >&2
        tail -n 5 "$dir/stderr" >&2
        exit 1
    fi
    server_pids=("$pid")
    addrs=127.0.0.1:$port
    target=resp
    leader=$addrs
    follower=
}

# start_cluster MODE TOB DIR: `dkvs cluster` on a generated config with three nodes.
start_cluster() {
    local mode=$1 tob=$2 dir=$3 pid i attempt ok c p t0 t1 t2 label
    local client_ports=() peer_ports=() ports=()
    for attempt in 1 2 3; do
        rm -rf "$dir"
        mkdir -p "$dir/data"
        read -r -a ports <<<"$(free_ports 6)"
        client_ports=("${ports[@]:0:3}")
        peer_ports=("${ports[@]:3:3}")
        {
            printf 'mode = "%s"\ntob = "%s"\n' "$mode" "$tob"
            for i in 1 2 3; do
                printf '\n[[nodes]]\nid = %d\nclient = "127.0.0.1:%d"\npeer = "127.0.0.1:%d"\n' \
                    "$i" "${client_ports[i - 1]}" "${peer_ports[i - 1]}"
            done
            printf '\n[storage]\ndata_dir = "%s"\nsync = "always"\n' "$dir/data"
            printf '%s\n' "$extra_toml"
        } >"$dir/dkvs.toml"
        # A process group of its own, so that one signal reaches the nodes too.
        setsid "$dkvs_bin" cluster "$dir/dkvs.toml" >"$dir/stdout" 2>"$dir/stderr" &
        pid=$!
        groups+=("$pid")
        ok=1
        t0=$(date +%s%N)
        for p in "${client_ports[@]}"; do
            wait_pong "$p" "$pid" 30 || { ok=0; break; }
        done
        t1=$(date +%s%N)
        for p in "${client_ports[@]}"; do
            ((ok)) || break
            wait_ready "$p" "$pid" 30 || ok=0
        done
        t2=$(date +%s%N)
        if ((ok)); then
            [[ $mode == eventual ]] && label=eventual || label=$mode/$tob
            log "$label: nodes answered PING after $(((t1 - t0) / 1000000)) ms, ready after $(((t2 - t0) / 1000000)) ms"
            if (((t2 - t1) / 1000000 > 500)); then
                problems+=("$label (round $round): ready $(((t2 - t1) / 1000000)) ms after the nodes first answered PING")
            fi
            server_pids=()
            for _ in $(seq 100); do
                read -r -a server_pids <<<"$(pgrep -P "$pid" | tr '\n' ' ')"
                ((${#server_pids[@]} == 3)) && break
                sleep 0.05
            done
            addrs=
            for c in "${client_ports[@]}"; do addrs+=${addrs:+,}127.0.0.1:$c; done
            target=resp
            leader=127.0.0.1:${client_ports[0]}
            follower=127.0.0.1:${client_ports[1]}
            cluster_pid=$pid
            return 0
        fi
        log "cluster did not come up (attempt $attempt); stderr: $(tail -n 2 "$dir/stderr" | tr '\n' ' ')"
        stop_group "$pid"
    done
    echo "dkvs cluster ($mode, $tob) did not start; its stderr ends with:" >&2
    tail -n 5 "$dir/stderr" >&2
    exit 1
}

# stop_group PID: SIGINT to the process group PID leads, wait for the leader (it waits for its
# nodes), KILL after 30 s.
stop_group() {
    kill -INT -- "-$1" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    kill -KILL -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

# stop_pids PID...: TERM, wait, KILL after 30 s.
stop_pids() {
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
        forget "$p"
    done
}

# start_etcd DIR: three members on loopback, each with a client and a peer port.
start_etcd() {
    local dir=$1 i attempt cluster= eps= ok
    local cports=() pports=() mpids=() ports=()
    for attempt in 1 2 3; do
        rm -rf "$dir"
        mkdir -p "$dir"
        read -r -a ports <<<"$(free_ports 6)"
        cports=("${ports[@]:0:3}")
        pports=("${ports[@]:3:3}")
        cluster=
        eps=
        for i in 1 2 3; do
            cluster+=${cluster:+,}m$i=http://127.0.0.1:${pports[i - 1]}
            eps+=${eps:+,}127.0.0.1:${cports[i - 1]}
        done
        mpids=()
        for i in 1 2 3; do
            etcd --name "m$i" --data-dir "$dir/m$i" \
                --listen-client-urls "http://127.0.0.1:${cports[i - 1]}" \
                --advertise-client-urls "http://127.0.0.1:${cports[i - 1]}" \
                --listen-peer-urls "http://127.0.0.1:${pports[i - 1]}" \
                --initial-advertise-peer-urls "http://127.0.0.1:${pports[i - 1]}" \
                --initial-cluster "$cluster" --initial-cluster-state new \
                --initial-cluster-token "bench-$attempt" >"$dir/m$i.log" 2>&1 &
            mpids+=("$!")
            pids+=("$!")
        done
        ok=0
        for _ in $(seq 300); do
            if etcdctl --endpoints "$eps" --command-timeout 1s endpoint health >/dev/null 2>&1; then
                ok=1
                break
            fi
            for i in "${mpids[@]}"; do kill -0 "$i" 2>/dev/null || break 2; done
            sleep 0.1
        done
        if ((ok)); then
            server_pids=("${mpids[@]}")
            addrs=$eps
            target=etcd
            leader=
            follower=
            for i in "${cports[@]}"; do
                if etcdctl --endpoints "127.0.0.1:$i" endpoint status -w fields 2>/dev/null |
                    awk -F' : ' '/^"MemberID"/ { m = $2 } /^"Leader"/ { l = $2 }
                        END { exit !(m != "" && m == l) }'; then
                    leader=127.0.0.1:$i
                elif [[ -z $follower ]]; then
                    follower=127.0.0.1:$i
                fi
            done
            [[ -n $leader && -n $follower ]] && return 0
            log "etcd has no leader yet"
        fi
        log "etcd did not come up (attempt $attempt): $(tail -n 1 "$dir/m1.log")"
        stop_pids "${mpids[@]}"
    done
    echo "etcd did not start; member 1's log ends with:" >&2
    tail -n 5 "$dir/m1.log" >&2
    exit 1
}

# CPU time (user + system) the server processes have used so far, in clock ticks.
server_ticks() {
    local p t=0
    for p in "${server_pids[@]}"; do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# run CASE OP CLIENTS [ADDR RUN]: one loadgen run against the servers started last (all their
# nodes, or only ADDR); appends "ops/s p50-ms p99-ms cpu-µs-per-request errors misses max-ms"
# to $tmp/results/CASE.RUN (RUN defaults to OP.CLIENTS).
run() {
    local case=$1 op=$2 n=$3 to=${4:-$addrs} key=${5:-$2.$3} before row rc=0
    before=$(server_ticks)
    row=$("$loadgen_bin" --target "$target" --addr "$to" --op "$op" --clients "$n" \
        --duration-s "$duration" --warmup-s "$warmup" --value-size "$value_size" --keys "$keys" \
        --seed "$RANDOM" --csv 2>"$tmp/loadgen.err") || rc=$?
    if ((rc == 2)) || [[ -z $row ]]; then
        problems+=("$case $key (round $round): loadgen failed: $(tr '\n' ' ' <"$tmp/loadgen.err")")
        log "$case $key: loadgen failed"
        return
    fi
    if ((rc != 0)); then
        problems+=("$case $key (round $round): $(tr '\n' ' ' <"$tmp/loadgen.err")")
    fi
    # target,op,clients,requests,seconds,ops_per_s,p50_ms,p99_ms,errors,max_ms,misses,sent
    awk -F, -v t=$(($(server_ticks) - before)) -v hz="$(getconf CLK_TCK)" '{
        printf "%s %s %s %.1f %s %s %s\n", $6, $7, $8, ($12 > 0 ? t / hz * 1e6 / $12 : 0), $9, $11, $10 }' \
        <<<"$row" >>"$tmp/results/$case.$key"
    if awk -F, '{ exit !($11 > 0) }' <<<"$row"; then
        problems+=("$case $key (round $round): $(cut -d, -f11 <<<"$row") of $(cut -d, -f4 <<<"$row") reads found no value")
    fi
    log "$case $key: $(awk -F, '{ printf "%s ops/s, p50 %s ms, p99 %s ms, max %s ms, %s errors", $6, $7, $8, $10, $9 }' <<<"$row")"
}

# preload CASE: writes every key once, not recorded.
preload() {
    local row rc=0
    row=$("$loadgen_bin" --target "$target" --addr "$addrs" --op load --clients "$clients" \
        --keys "$keys" --value-size "$value_size" --csv 2>"$tmp/loadgen.err") || rc=$?
    if ((rc != 0)); then
        problems+=("$1 preload (round $round): $(tr '\n' ' ' <"$tmp/loadgen.err")")
    fi
    log "$1: $keys keys written at $(cut -d, -f6 <<<"$row") ops/s"
}

# --- build and describe the machine -----------------------------------------------------------

if ((build)); then
    log "cargo build --release -p dkvs -p dkvs-loadgen"
    cargo build --release --quiet -p dkvs -p dkvs-loadgen
fi

busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; }
all_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
# CPU time of this shell and its finished children, in ticks, from a file `times` wrote.
own_ticks() {
    awk -v hz="$(getconf CLK_TCK)" '{
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } }
        END { printf "%d", t * hz }' "$1"
}

echo "# dkvs clusters vs etcd — bench/replication.sh"
echo
echo "date:          $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "dkvs:          commit $(git describe --always --dirty 2>/dev/null || echo unknown), src/ digest $(find src -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-12) ($(rustc --version))"
echo "binaries:      $dkvs_bin and $loadgen_bin, built $(date -r "$dkvs_bin" '+%H:%M') and $(date -r "$loadgen_bin" '+%H:%M')$( ((build)) || echo ' (not rebuilt: src/ may have changed since)')"
if ((need_etcd)); then
    echo "etcd:          $(etcd --version | head -n 1 | sed 's/^etcd Version: //') ($(etcd --version | sed -n 's/^Go Version: //p'))"
fi
echo "cpus:          $(nproc) × $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "memory:        $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:        $(uname -sr)"
echo "load average:  $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "settings:      rounds=$rounds, ${duration} s per run after ${warmup} s warm-up, $value_size-byte values, $keys keys, -c $clients / -c $etcd_clients / -c 1"
echo "cases:         ${cases[*]}"
echo "load:          bench/loadgen, one connection per client, spread round-robin over the 3 nodes"
echo "               (etcd: over the 3 members; followers forward writes to the leader)"
if [[ -n $extra_toml ]]; then
    echo "DKVS_EXTRA_TOML: $(tr '\n' ' ' <<<"$extra_toml")"
fi
echo

# --- the rounds -------------------------------------------------------------------------------

mkdir -p "$tmp/results"
busy_start=$(busy_ticks)
steal_start=$(steal_ticks)
all_start=$(all_ticks)
times >"$tmp/times.start"
t_start=$(date +%s)

for round in $(seq "$rounds"); do
    for c in "${cases[@]}"; do
        log "round $round/$rounds: $c"
        dir=$tmp/$c-$round
        case $c in
        single) start_single "$dir" ;;
        eventual) start_cluster eventual sequencer "$dir" ;;
        seq-*) start_cluster sequential "${c#seq-}" "$dir" ;;
        lin-*) start_cluster linearizable "${c#lin-}" "$dir" ;;
        etcd) start_etcd "$dir" ;;
        esac
        preload "$c"
        if [[ $c == etcd ]]; then
            run "$c" set "$etcd_clients"
            run "$c" get "$etcd_clients"
        else
            run "$c" set "$clients"
            run "$c" get "$clients"
            if [[ $c == lin-* ]]; then
                run "$c" set "$etcd_clients"
                run "$c" get "$etcd_clients"
            fi
        fi
        # One client: on a node that does not lead (the usual case for a client of a 3-node
        # cluster), and where there is a leader, on it too.
        run "$c" set 1 "${follower:-$leader}" set.1
        if [[ $c == *-sequencer || $c == etcd ]]; then
            run "$c" set 1 "$leader" set.1L
        fi
        case $c in
        single | etcd) stop_pids "${server_pids[@]}" ;;
        *)
            if [[ $(pgrep -P "$cluster_pid" | wc -l) != 3 ]]; then
                problems+=("$c (round $round): only $(pgrep -P "$cluster_pid" | wc -l) of 3 nodes were running at the end")
            fi
            stop_group "$cluster_pid"
            ;;
        esac
        # Keep the servers' logs when they said anything worse than INFO.
        if grep -Eqs ' (WARN|ERROR) ' "$dir/stderr"; then
            mkdir -p "$tmp/logs"
            grep -E ' (WARN|ERROR) ' "$dir/stderr" | head -n 5 >"$tmp/logs/$c-$round"
            problems+=("$c (round $round): the nodes logged $(grep -Ec ' (WARN|ERROR) ' "$dir/stderr") warnings/errors, first: $(head -n 1 "$tmp/logs/$c-$round")")
        fi
        rm -rf "$dir"
    done
done

# --- the tables -------------------------------------------------------------------------------

times >"$tmp/times.end"
foreign_s=$(awk -v b=$(($(busy_ticks) - busy_start)) \
    -v o=$(($(own_ticks "$tmp/times.end") - $(own_ticks "$tmp/times.start"))) \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { f = (b - o) / hz; printf "%.0f", (f < 0 ? 0 : f) }')

# The median of the numbers on stdin.
median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }'; }
# med CASE.OP.CLIENTS FIELD: median of one column (1 ops/s, 2 p50, 3 p99, 4 CPU µs/request).
med() {
    if [[ -s $tmp/results/$1 ]]; then cut -d' ' -f"$2" "$tmp/results/$1" | median; else echo nan; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "nan" }'; }
# verdict RATIO TARGET higher|lower
verdict() {
    awk -v r="$1" -v t="$2" -v w="$3" 'BEGIN {
        if (r == "nan") { printf "n/a"; exit }
        ok = (w == "higher") ? (r >= t) : (r <= t)
        printf "%s %s %.1fx", (ok ? "met    " : "NOT met"), (w == "higher" ? ">=" : "<="), t }'
}

echo "## Throughput and latency (median of $rounds rounds; lowest-highest ops/s in brackets)"
echo
printf '| %-14s | %-18s | %-24s | %8s | %8s | %8s | %11s |\n' case run "ops/s" "p50 ms" "p99 ms" \
    "max ms" "CPU µs/req"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..20})" \
    "$(printf -- '-%.0s' {1..26})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..10})" \
    "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..13})"
for c in "${cases[@]}"; do
    for r in "set.$clients" "get.$clients" "set.$etcd_clients" "get.$etcd_clients" set.1 set.1L; do
        f=$c.$r
        [[ -s $tmp/results/$f ]] || continue
        case $r in
        set.1) name="SET -c 1" ;;
        set.1L) name="SET -c 1, leader" ;;
        *) name="$(tr a-z A-Z <<<"${r%.*}") -c ${r#*.}" ;;
        esac
        if [[ $r == set.1 && ( $c == *-sequencer || $c == etcd ) ]]; then name+=", follower"; fi
        printf '| %-14s | %-18s | %8.0f (%13s) | %8.3f | %8.3f | %8.1f | %11.1f |\n' "$c" \
            "$name" "$(med "$f" 1)" \
            "$(cut -d' ' -f1 "$tmp/results/$f" | spread)" "$(med "$f" 2)" "$(med "$f" 3)" \
            "$(cut -d' ' -f7 "$tmp/results/$f" | sort -g | tail -n 1)" "$(med "$f" 4)"
    done
done
echo
echo "max ms: the slowest single request in any round. CPU µs/req: user + system time of all the case's server processes during the run, warm-up"
echo "included, per request answered (the load generator's own CPU is not counted)."
echo

echo "## Goals"
echo
printf '| %-56s | %-24s | %-7s | %-16s |\n' goal measured ratio verdict
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..58})" "$(printf -- '-%.0s' {1..26})" \
    "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..18})"
goal() { # text measured-text ratio target higher|lower
    printf '| %-56s | %-24s | %-7s | %-16s |\n' "$1" "$2" "$3" "$(verdict "$3" "$4" "$5")"
}
e=etcd
for c in lin-sequencer lin-lamport; do
    [[ -s $tmp/results/$c.set.1 && -s $tmp/results/$e.set.1 ]] || continue
    d=$(med "$c.set.$etcd_clients" 1) x=$(med "$e.set.$etcd_clients" 1)
    goal "$c SET -c $etcd_clients vs etcd Put" "$(printf '%.0f vs %.0f ops/s' "$d" "$x")" "$(ratio "$d" "$x")" 2.0 higher
    d=$(med "$c.get.$etcd_clients" 1) x=$(med "$e.get.$etcd_clients" 1)
    goal "$c GET -c $etcd_clients vs etcd Range (linearizable)" "$(printf '%.0f vs %.0f ops/s' "$d" "$x")" "$(ratio "$d" "$x")" 2.0 higher
    d=$(med "$c.set.1" 2) x=$(med "$e.set.1" 2)
    goal "$c SET -c 1 p50 vs etcd Put, on a follower" "$(printf '%.3f vs %.3f ms' "$d" "$x")" "$(ratio "$d" "$x")" 1.0 lower
    if [[ -s $tmp/results/$c.set.1L ]]; then
        d=$(med "$c.set.1L" 2) x=$(med "$e.set.1L" 2)
        goal "$c SET -c 1 p50 vs etcd Put, on the leader" "$(printf '%.3f vs %.3f ms' "$d" "$x")" "$(ratio "$d" "$x")" 1.0 lower
    fi
done
if [[ -s $tmp/results/eventual.set.$clients && -s $tmp/results/single.set.$clients ]]; then
    d=$(med "eventual.set.$clients" 1) x=$(med "single.set.$clients" 1)
    goal "eventual SET -c $clients vs single node" "$(printf '%.0f vs %.0f ops/s' "$d" "$x")" "$(ratio "$d" "$x")" 0.5 higher
fi
echo

if ((${#problems[@]})); then
    echo "## Problems seen"
    echo
    for p in "${problems[@]}"; do echo "- $p"; done
    echo
fi

echo "Run time: $(($(date +%s) - t_start)) s for the rounds."
echo "CPU used by other processes during the run: about ${foreign_s} s (kernel threads and the output tee included)."
echo "CPU time stolen by the hypervisor: $(awk -v s=$(($(steal_ticks) - steal_start)) \
    -v a=$(($(all_ticks) - all_start)) 'BEGIN { printf "%.1f", (a > 0 ? 100 * s / a : 0) }') % of all CPU time."
if ((foreign_s > 20)); then
    echo "WARNING: something else was busy on this machine; treat these numbers as unreliable."
fi
echo
echo "report saved as $report" >&2
