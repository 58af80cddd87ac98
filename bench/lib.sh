# bench/lib.sh — shell helpers shared by the cluster benchmarks; sourced, not run.

# free_ports N: prints N distinct TCP ports that nobody listens on, below the ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range starts at 32768 on Linux), so that an outgoing
# connection cannot take one of them before its server binds it. All N come from one call:
# ports handed out by separate `$(...)` subshells could repeat.
free_ports() {
    local n=$1 out=" " count=0 p
    while ((count < n)); do
        p=$((20000 + RANDOM % 12000))
        if [[ $out != *" $p "* && -z $(ss -Htan "sport = :$p") ]]; then
            out+="$p "
            count=$((count + 1))
        fi
    done
    echo $out
}

# stop_group: stops the cluster whose process group leader's pid is in $group (started with
# `setsid ... &; group=$!`), if any: SIGINT to the whole group, then SIGKILL after 10 s.
stop_group() {
    if [[ -n ${group:-} ]]; then
        kill -INT -- "-$group" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$group" 2>/dev/null || break; sleep 0.05; done
        kill -KILL -- "-$group" 2>/dev/null || true
        group=
    fi
}

# wait_ready LOG PORT...: waits (30 s at most) until every node on PORT... reports ready:true in
# `stats`; exits with the end of LOG if the cluster (process group $group) dies or never gets
# there.
wait_ready() {
    local log=$1 p deadline=$(($(date +%s) + 30))
    shift
    for p in "$@"; do
        until [[ $(redis-cli -p "$p" stats 2>/dev/null) == *ready:true* ]]; do
            if (($(date +%s) > deadline)) || ! kill -0 "$group" 2>/dev/null; then
                echo "cluster did not become ready:" >&2
                tail -n 5 "$log" >&2
                exit 1
            fi
            sleep 0.02
        done
    done
}
