#!/usr/bin/env bash
# Interop check: the real `redis-cli` and `redis-benchmark` against a dkvs server.
#
# dkvs claims to speak RESP2 well enough for the stock Redis tools. This script holds it to that
# with the tools themselves, not with our own parser's idea of the protocol: it starts a server on
# a free port with a fresh data directory, runs each check, stops the server with SHUTDOWN, starts
# it again on the same directory and checks that the data survived.
#
# It builds nothing. The binary is $DKVS_BIN, else target/release/dkvs, else target/debug/dkvs.
# The config is $DKVS_CONFIG, else stages/01-single-node/dkvs.toml, else a minimal generated one
# (sync = "always"); --listen and --data-dir override its address and folder.
#
# Output: one line per check, then `N passed, M failed`. Exit status 0 only if all passed.
# Needs: redis-cli and redis-benchmark (Debian: apt-get install redis-tools), coreutils `timeout`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    echo "ok   $1"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL $1"
    if [[ $# -gt 1 ]]; then printf '       %s\n' "$2"; fi
}

# --- what to test, with what ---------------------------------------------------------------

for tool in redis-cli redis-benchmark timeout; do
    if ! command -v "$tool" >/dev/null; then
        fail "prerequisite: $tool not found (apt-get install redis-tools)"
        echo "$passed passed, $failed failed"
        exit 1
    fi
done

bin=${DKVS_BIN:-}
if [[ -z $bin ]]; then
    if [[ -x target/release/dkvs ]]; then bin=target/release/dkvs; else bin=target/debug/dkvs; fi
fi
if [[ ! -x $bin ]]; then
    fail "prerequisite: no dkvs binary at $bin (run cargo build, or set DKVS_BIN)"
    echo "$passed passed, $failed failed"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dkvs-interop.XXXXXX")
data=$tmp/data
server_pid=
port=

config=${DKVS_CONFIG:-}
if [[ -z $config && -f stages/01-single-node/dkvs.toml ]]; then
    config=stages/01-single-node/dkvs.toml
fi
if [[ -z $config ]]; then
    config=$tmp/dkvs.toml
    printf '[[nodes]]\nid = 1\nclient = "127.0.0.1:7001"\n[storage]\nsync = "always"\n' >"$config"
fi

# On any exit (a failed check, an unexpected error, Ctrl-C): stop the server, remove the temp
# folder, and print the summary line. An exit we did not plan counts as a failure.
cleanup() {
    local rc=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        echo "FAIL unexpected error (exit status $rc)"
        failed=1
    fi
    echo "$passed passed, $failed failed"
    if [[ $failed -ne 0 ]]; then exit 1; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts dkvs on a free port (port 0; the port is read from the line it prints once it serves).
start_server() {
    : >"$tmp/stdout"
    : >"$tmp/stderr"
    "$bin" serve --config "$config" --listen 127.0.0.1:0 --data-dir "$data" \
        >"$tmp/stdout" 2>"$tmp/stderr" &
    server_pid=$!
    port=
    for _ in $(seq 300); do
        port=$(sed -n 's/^dkvs node [0-9]* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/stdout")
        if [[ -n $port ]]; then return 0; fi
        if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    fail "$1" "server did not start; its stderr ends with:"
    tail -n 15 "$tmp/stderr" | sed 's/^/         /'
    exit 1
}

# Stops the server with SHUTDOWN and returns its exit status (124 if it did not exit in 15 s).
shutdown_server() {
    timeout 10 redis-cli -p "$port" shutdown >/dev/null 2>&1 || true
    for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then return 124; fi
    local rc=0
    wait "$server_pid" || rc=$?
    server_pid=
    return "$rc"
}

# redis-cli with formatted output (`(nil)`, `(integer) 1`, `(error) …`) even though stdout is not
# a terminal, so a missing key and an empty string look different. Bounded: a hung server fails
# the check instead of hanging the script.
cli() { timeout 10 redis-cli -p "$port" --no-raw "$@" 2>&1; }

# expect NAME WANT COMMAND...: runs COMMAND and compares its whole output with WANT.
expect() {
    local name=$1 want=$2 got
    shift 2
    got=$("$@") || true
    if [[ $got == "$want" ]]; then
        pass "$name"
    else
        fail "$name" "want [${want//$'\n'/'\n'}], got [${got//$'\n'/'\n'}]"
    fi
}

# --- first life of the server -----------------------------------------------------------------

echo "# dkvs: $bin, config: $config"
start_server "server starts"
pass "server starts and prints its port ($port)"

expect "ping -> PONG" "PONG" cli ping
expect "ping with a message echoes it" '"hello"' cli ping hello
expect "echo -> its argument" '"two words"' cli echo "two words"
expect "set k v -> OK" "OK" cli set k v
expect "get k -> v" '"v"' cli get k
expect "get of a missing key -> (nil)" "(nil)" cli get missing
expect "exists k -> 1" "(integer) 1" cli exists k
expect "exists counts each key given" "(integer) 1" cli exists k missing
expect "del k -> 1" "(integer) 1" cli del k
expect "del k again -> 0" "(integer) 0" cli del k
expect "get after del -> (nil)" "(nil)" cli get k
expect "set gone x -> OK" "OK" cli set gone x
expect "del of several keys counts the live ones" "(integer) 1" cli del gone missing
expect "set overwrites" "OK" cli set k v1
expect "set k v2 -> OK" "OK" cli set k v2
expect "get returns the last value" '"v2"' cli get k
expect "empty value round-trips" '""' sh -c "timeout 10 redis-cli -p $port set empty '' >/dev/null && timeout 10 redis-cli -p $port --no-raw get empty"

# A value with a newline, a NUL, a CR LF and a byte above 0x7f: only a length-prefixed protocol
# carries it intact. `-x` reads the value from stdin as the last argument.
printf 'line one\nline two\0after nul\r\n\377end' >"$tmp/binary"
expect "binary value: set via -x" "OK" sh -c "timeout 10 redis-cli -p $port -x set binkey <'$tmp/binary'"
# --raw prints the bytes as they are plus one newline; drop that newline and compare.
if timeout 10 redis-cli -p "$port" --raw get binkey >"$tmp/binary.out" 2>&1 &&
    head -c -1 "$tmp/binary.out" | cmp -s - "$tmp/binary"; then
    pass "binary value (newline, NUL, CR LF, 0xff) round-trips byte for byte"
else
    fail "binary value round-trips byte for byte" "got: $(od -c "$tmp/binary.out" | head -n 3 | tr '\n' ' ')"
fi
expect "binary key" "OK" cli set $'key\twith tab' x
expect "binary key reads back" '"x"' cli get $'key\twith tab'

# Pipelining: many RESP requests in one stream without waiting for replies. --pipe counts the
# replies and errors (it appends an ECHO of its own to know when the last reply has arrived).
pipe_keys=5000
awk -v n="$pipe_keys" 'BEGIN {
    for (i = 0; i < n; i++) {
        k = sprintf("pipe:%06d", i); v = sprintf("value-%d", i)
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
    }
    for (i = 0; i < n; i += 100) {
        k = sprintf("pipe:%06d", i)
        printf "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", length(k), k
    }
}' >"$tmp/pipe.resp"
pipe_replies=$((pipe_keys + pipe_keys / 100))
# `redis-cli --pipe` ends its stream with "\r\n*2\r\n$4\r\nECHO\r\n…": an empty inline command
# (a bare CR LF) before its last frame, which Redis skips. Checked on its own first, so a failure
# of the --pipe check below comes with its cause.
raw_exchange() { # SEND LENGTH: sends SEND on a new connection, prints LENGTH bytes of the answer
    local reply=
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf '%b' "$1" >&3
    IFS= read -r -N "$2" -t 5 reply <&3 || true
    exec 3<&-
    reply=${reply//$'\r'/'\r'}
    printf '%s' "${reply//$'\n'/'\n'}"
}
expect "a bare CR LF between RESP frames is skipped, as Redis does" '+PONG\r\n+PONG\r\n' \
    raw_exchange '*1\r\n$4\r\nPING\r\n\r\n*1\r\n$4\r\nPING\r\n' 14
expect "pipelined $pipe_replies requests via --pipe: all answered, no errors" \
    "errors: 0, replies: $pipe_replies" \
    sh -c "timeout 30 redis-cli -p $port --pipe <'$tmp/pipe.resp' 2>&1 | tail -n 1"
expect "pipelined writes are readable" '"value-4321"' cli get pipe:004321

# keys now: k, empty, binkey, "key\twith tab", and the pipelined ones.
keys_before=$((4 + pipe_keys))
expect "dbsize counts live keys" "(integer) $keys_before" cli dbsize

got=$(cli nosuchcommand arg) || true
if [[ $got == "(error) ERR"* ]]; then
    pass "unknown command -> error reply ($got)"
else
    fail "unknown command -> error reply" "got $(printf %q "$got")"
fi
expect "connection still usable after an error" "PONG" cli ping

# redis-benchmark: its own connection handling, 50 clients, CONFIG GET at start-up. -q prints
# progress lines separated by CR, then e.g. `SET: 52910.05 requests per second, p50=0.207 msec`.
# Its keys are the literal `key:__rand_int__` (no -r), so it adds exactly one key.
bench_rc=0
timeout 60 redis-benchmark -p "$port" -t set,get -n 20000 -q >"$tmp/bench.out" 2>&1 || bench_rc=$?
for test in SET GET; do
    rate=$(tr '\r' '\n' <"$tmp/bench.out" |
        sed -n "s/^$test: \([0-9.]*\) requests per second.*/\1/p" | tail -n 1)
    if [[ $bench_rc -eq 0 && -n $rate ]] && awk -v r="$rate" 'BEGIN { exit !(r > 0) }'; then
        pass "redis-benchmark $test: $rate requests/s"
    else
        fail "redis-benchmark $test (exit status $bench_rc)" \
            "$(tr '\r' '\n' <"$tmp/bench.out" | grep -v '^ *$' | tail -n 3 | tr '\n' ' ')"
    fi
done
keys_before=$((keys_before + 1))
expect "dbsize after redis-benchmark" "(integer) $keys_before" cli dbsize

shutdown_rc=0
shutdown_server || shutdown_rc=$?
if [[ $shutdown_rc -eq 0 ]]; then
    pass "redis-cli shutdown: server exits with status 0"
else
    fail "redis-cli shutdown: server exits with status 0" "exit status $shutdown_rc"
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
fi

# --- second life: same data directory ---------------------------------------------------------

start_server "server restarts on the same data directory"
pass "server restarts on the same data directory (port $port)"
expect "after restart: dbsize unchanged" "(integer) $keys_before" cli dbsize
expect "after restart: last value of k" '"v2"' cli get k
expect "after restart: deleted key stays deleted" "(nil)" cli get gone
expect "after restart: pipelined key" '"value-0"' cli get pipe:000000
expect "after restart: last pipelined key" "\"value-$((pipe_keys - 1))\"" cli get "$(printf 'pipe:%06d' $((pipe_keys - 1)))"
if timeout 10 redis-cli -p "$port" --raw get binkey >"$tmp/binary.out" 2>&1 &&
    head -c -1 "$tmp/binary.out" | cmp -s - "$tmp/binary"; then
    pass "after restart: binary value intact"
else
    fail "after restart: binary value intact" "got: $(od -c "$tmp/binary.out" | head -n 3 | tr '\n' ' ')"
fi

kill -TERM "$server_pid"
term_rc=0
for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
    term_rc=124 # still running after 15 s; the EXIT trap kills it
else
    wait "$server_pid" || term_rc=$?
    server_pid=
fi
if [[ $term_rc -eq 0 ]]; then
    pass "SIGTERM: server exits with status 0"
else
    fail "SIGTERM: server exits with status 0" "exit status $term_rc"
fi
# The EXIT trap prints the summary and sets the exit status.
