#!/usr/bin/env bash
# A real multi-node Ray cluster on one machine: one head and N worker nodes, each `ray start`ed
# with one CPU and a temp dir of its own, so tiles really land on different nodes.
#
#   cluster/local.sh start [N_WORKERS]   head + N worker nodes (default 1); prints the addresses
#   cluster/local.sh add                 one more worker node joins the running cluster (what an
#                                        autoscaler does: a running job's pool grows onto it)
#   cluster/local.sh status              which of this cluster's processes run; the nodes
#   cluster/local.sh stop                stops this cluster's processes only
#
# Environment (defaults in brackets):
#   QDIST_RAY_PORT [6390]           GCS port of the head
#   QDIST_DASHBOARD_PORT [8275]     dashboard and job API, bound to 127.0.0.1
#   QDIST_RAY_CLIENT_PORT [P+1]     Ray client server of the head
#   QDIST_AGENT_PORT_BASE [P+10]    dashboard-agent HTTP port of node k is BASE+k (head k=0)
#   QDIST_NODE_CPUS [1]             CPUs per node
#   QDIST_OBJECT_STORE_MB [256]     object store per node
#   QDIST_RAY_DIR [/tmp/qdist-ray-P] root of the nodes' temp dirs, logs and the state file
#   QDIST_STOP_GRACE_S [3]          whole seconds each group of processes gets before SIGKILL
#
# `ray stop` would stop every Ray process of the user on this machine (embedded ray.init
# sessions, other clusters); this script never calls it. It stops only the processes whose
# command line names this cluster's temp dir, and their descendants (Ray workers, job drivers).
set -euo pipefail

export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"   # Ray 2.60 turns token auth on otherwise
export RAY_USAGE_STATS_ENABLED=0

PORT="${QDIST_RAY_PORT:-6390}"
DASH="${QDIST_DASHBOARD_PORT:-8275}"
CLIENT="${QDIST_RAY_CLIENT_PORT:-$((PORT + 1))}"
AGENT_BASE="${QDIST_AGENT_PORT_BASE:-$((PORT + 10))}"
CPUS="${QDIST_NODE_CPUS:-1}"
STORE_MB="${QDIST_OBJECT_STORE_MB:-256}"
GRACE="${QDIST_STOP_GRACE_S:-3}"
ROOT="${QDIST_RAY_DIR:-/tmp/qdist-ray-$PORT}"
STATE="$ROOT/cluster.env"
RAY="${RAY:-ray}"
PYTHON="${PYTHON:-python}"

die() { echo "cluster/local.sh: $*" >&2; exit 2; }

# PIDs of this cluster: processes with a flag pointing into $ROOT/, then all their descendants
# (workers rename themselves to ray::IDLE and lose the path; job drivers never had it).
cluster_pids() {
    local roots=() pid cmd
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
        cmd="$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")" || continue
        # as a flag value (--temp-dir=, --session-dir=, --log_dir= ...), not e.g. `tail -f $ROOT/..`
        [[ "$cmd" == *"=$ROOT/"* ]] && roots+=("$pid")
    done
    [[ ${#roots[@]} -eq 0 ]] && return 0
    # pid -> ppid table, then a breadth-first walk down from the roots
    local -A parent=()
    local stat rest ppid
    for d in /proc/[0-9]*; do
        stat="$(cat 2>/dev/null <"$d/stat")" || continue
        rest="${stat##*) }"                 # fields after "pid (comm) "
        read -r _ ppid _ <<<"$rest"
        parent["${d#/proc/}"]="$ppid"
    done
    local -A seen=()
    local queue=("${roots[@]}") p c
    while [[ ${#queue[@]} -gt 0 ]]; do
        p="${queue[0]}"; queue=("${queue[@]:1}")
        [[ -n "${seen[$p]:-}" ]] && continue
        seen["$p"]=1
        for c in "${!parent[@]}"; do
            [[ "${parent[$c]}" == "$p" ]] && queue+=("$c")
        done
    done
    printf '%s\n' "${!seen[@]}" | sort -n
}

is_running() {  # alive and not a zombie (an exited daemon whose new parent has not reaped it)
    local stat
    stat="$(cat 2>/dev/null <"/proc/$1/stat")" || return 1
    [[ "${stat##*) }" != Z* ]]
}

node_args() {  # node index k -> the flags every node needs to coexist on one machine
    local k="$1"
    echo "--num-cpus=$CPUS --object-store-memory=$((STORE_MB * 1024 * 1024))" \
         "--temp-dir=$ROOT/node$k --dashboard-agent-listen-port=$((AGENT_BASE + k))" \
         "--min-worker-port=0 --max-worker-port=0 --disable-usage-stats"
}

start() {
    local n="${1:-1}"
    [[ "$n" =~ ^[0-9]+$ ]] || die "N_WORKERS must be a whole number; got '$n'."
    if [[ -n "$(cluster_pids)" ]]; then
        die "a cluster under $ROOT is already running; 'cluster/local.sh stop' first, or set QDIST_RAY_PORT / QDIST_RAY_DIR for a second one."
    fi
    command -v "$RAY" >/dev/null || die "'$RAY' not found; activate the virtualenv that has ray[default]."
    mkdir -p "$ROOT"
    local t0=$SECONDS pids=() k
    # All nodes start at once: a worker node waits for the head's GCS to come up by itself.
    # shellcheck disable=SC2046
    "$RAY" start --head --port="$PORT" --dashboard-host=127.0.0.1 --dashboard-port="$DASH" \
        --ray-client-server-port="$CLIENT" $(node_args 0) >"$ROOT/start-node0.log" 2>&1 &
    pids+=("$!")
    for ((k = 1; k <= n; k++)); do
        # shellcheck disable=SC2046
        "$RAY" start --address="127.0.0.1:$PORT" $(node_args "$k") >"$ROOT/start-node$k.log" 2>&1 &
        pids+=("$!")
    done
    for k in "${!pids[@]}"; do
        wait "${pids[$k]}" || { cat "$ROOT/start-node$k.log" >&2; stop >/dev/null;
                               die "node $k (0 = head) did not start (its log is above)."; }
    done
    local gcs
    gcs="$(cat "$ROOT/node0/ray_current_cluster")"
    cat >"$STATE" <<EOF
QDIST_GCS_ADDRESS=$gcs
QDIST_JOB_ADDRESS=http://127.0.0.1:$DASH
QDIST_WORKER_NODES=$n
EOF
    echo "Ray cluster up in $((SECONDS - t0)) s: head + $n worker node(s), $CPUS CPU(s) each"
    echo "  job API / dashboard: http://127.0.0.1:$DASH   (qdist submit JOB.yaml --address http://127.0.0.1:$DASH)"
    echo "  GCS address:         $gcs   (qdist run JOB.yaml --address $gcs)"
    echo "  logs:                $ROOT/node*/session_latest/logs"
    echo "  stop with:           cluster/local.sh stop"
}

add() {
    [[ -f "$STATE" && -n "$(cluster_pids)" ]] || die "no cluster running under $ROOT; 'cluster/local.sh start' first."
    local n k
    n="$(sed -n 's/^QDIST_WORKER_NODES=//p' "$STATE")"
    k=$((n + 1))
    # shellcheck disable=SC2046
    "$RAY" start --address="127.0.0.1:$PORT" $(node_args "$k") >"$ROOT/start-node$k.log" 2>&1 ||
        { cat "$ROOT/start-node$k.log" >&2; die "worker node $k did not start (its log is above)."; }
    sed -i "s/^QDIST_WORKER_NODES=.*/QDIST_WORKER_NODES=$k/" "$STATE"
    echo "worker node $k joined the cluster under $ROOT ($CPUS CPU(s))"
}

terminate() {  # PIDs...: SIGTERM, up to $GRACE s to exit, then SIGKILL
    [[ $# -eq 0 ]] && return 0
    kill -TERM "$@" 2>/dev/null || true
    local i alive=("$@")
    for ((i = 0; i < GRACE * 10; i++)); do
        local still=()
        for p in "${alive[@]}"; do is_running "$p" && still+=("$p"); done
        alive=("${still[@]}")
        [[ ${#alive[@]} -eq 0 ]] && return 0
        sleep 0.1
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

stop() {
    local pids
    pids="$(cluster_pids)"
    if [[ -z "$pids" ]]; then
        echo "no cluster running under $ROOT"
        return 0
    fi
    # Ray's own order (`ray stop`): raylets with their workers and drivers, then the other
    # daemons, the GCS last, so that nothing complains about a vanished GCS on its way out.
    local first=() middle=() last=() argv0
    for p in $pids; do
        argv0=""
        { IFS= read -r -d '' argv0 <"/proc/$p/cmdline"; } 2>/dev/null || true
        case "$argv0" in
            */gcs_server) last+=("$p") ;;
            */raylet | ray::* | "") first+=("$p") ;;
            *) if [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")" == *"=$ROOT/"* ]]; then
                   middle+=("$p")
               else
                   first+=("$p")    # a worker or a job driver: a descendant of a raylet
               fi ;;
        esac
    done
    terminate "${first[@]}"
    terminate "${middle[@]}"
    terminate "${last[@]}"
    rm -f "$STATE"
    echo "stopped $(wc -w <<<"$pids") process(es) of the cluster under $ROOT (logs kept there)"
}

status() {
    local pids
    pids="$(cluster_pids)"
    if [[ -z "$pids" ]]; then
        echo "no cluster running under $ROOT"
        return 3
    fi
    [[ -f "$STATE" ]] && cat "$STATE"
    echo "processes: $(wc -w <<<"$pids")"
    if command -v curl >/dev/null && curl -sf "http://127.0.0.1:$DASH/api/version" >/dev/null; then
        echo "job API: up at http://127.0.0.1:$DASH"
    else
        echo "job API: not answering at http://127.0.0.1:$DASH"
    fi
    "$PYTHON" - "http://127.0.0.1:$DASH" <<'PY' || true
import sys
from ray.util.state import list_nodes
for n in sorted(list_nodes(address=sys.argv[1]), key=lambda n: not n.is_head_node):
    role = "head  " if n.is_head_node else "worker"
    cpus = n.resources_total.get("CPU", 0)
    print(f"  {role} {n.node_id[:16]}  {n.state:<5}  {n.node_ip}  CPU={cpus:g}")
PY
}

case "${1:-}" in
    start) start "${2:-1}" ;;
    add) add ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: cluster/local.sh start [N_WORKERS] | add | status | stop" >&2; exit 2 ;;
esac
