#!/usr/bin/env bash
# Runs a small lloom network on this machine: a validator and two executors
# serving different models (.devops/executor/executor.toml and
# executor-2.toml; both serve gpt-4), waits until the validator has
# registered both, then asks it with the client.
#
#   CLIENT_MODE         discover, query, list or stats                (discover)
#   QUERY_MODEL         the model CLIENT_MODE=query asks for          (gpt-4)
#   CLEANUP_ON_EXIT     false: leave the network running in the background (true)
#   VALIDATOR_PORT      the validator's port                          (8080)
#   HEARTBEAT_INTERVAL  seconds between the executors' heartbeats     (5)
#   TEST_TIMEOUT        seconds to wait for the network and the client (30)
#   LOG_LEVEL           the nodes' log level                          (info)
#
#   scripts/run-system-with-announcements.sh stop
#       stops a network left running, by the process ids it recorded.
#
# Logs, process ids and the executors' identities are kept in .run/system/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUN="$LLOOM_RUN/system"
PIDS="$RUN/pids"
SELF="scripts/run-system-with-announcements.sh"

# recorded_pids: "name pid" lines of the processes still running, executors
# first so that the validator is there to receive their REMOVALs.
recorded_pids() {
	[[ -r $PIDS ]] || return 0
	local name pid
	while read -r name pid; do
		[[ $name != validator ]] && pid_is_lloom "$pid" && echo "$name $pid"
	done <"$PIDS"
	while read -r name pid; do
		[[ $name == validator ]] && pid_is_lloom "$pid" && echo "$name $pid"
	done <"$PIDS"
	return 0
}

stop_system() {
	local name pid stopped=0
	while read -r name pid; do
		[[ -n $pid ]] || continue
		info "Stopping $name (pid $pid)"
		stop_pid "$pid" 10
		stopped=$((stopped + 1))
	done < <(recorded_pids)
	rm -f "$PIDS"
	((stopped > 0)) || info "Nothing to stop: no recorded lloom process is running."
	return 0
}

if [[ ${1:-} == stop ]]; then
	stop_system
	exit 0
elif [[ $# -gt 0 ]]; then
	die "unknown argument '$1'; usage: $SELF [stop]"
fi

mode="${CLIENT_MODE:-discover}"
case $mode in
discover | query | list | stats) ;;
*) die "CLIENT_MODE=\"$mode\": want discover, query, list or stats" ;;
esac
query_model="${QUERY_MODEL:-gpt-4}"
cleanup_on_exit="$(bool_value CLEANUP_ON_EXIT true)"
port="$(port_value VALIDATOR_PORT 8080)"
interval="$(seconds_value HEARTBEAT_INTERVAL 5)"
timeout="$(seconds_value TEST_TIMEOUT 30)"
log_level="${LOG_LEVEL:-info}"
need python3

if [[ -n $(recorded_pids) ]]; then
	die "a network started by this script is still running ($(recorded_pids | tr '\n' ' ')); stop it with: $SELF stop"
fi
mkdir -p "$RUN"
: >"$PIDS"
ensure_built

# shellcheck disable=SC2317 # run by trap or wait_for
cleanup() {
	local rc=$?
	if [[ $cleanup_on_exit == true ]]; then
		info ""
		stop_system
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# launch NAME SCRIPT VAR=VALUE…: runs a .devops script in the background
# with those variables; it execs lloom, so $! is the node's process id.
# nohup keeps the node alive when the terminal closes (CLEANUP_ON_EXIT=false).
launch() {
	local name=$1 script=$2
	shift 2
	env "$@" LOG_LEVEL="$log_level" nohup "$LLOOM_ROOT/$script" >"$RUN/$name.log" 2>&1 </dev/null &
	echo "$name $!" >>"$PIDS"
	LAUNCHED=$!
}

# settled PID CMD…: CMD succeeds, or the process has exited (no use waiting).
# shellcheck disable=SC2317 # run by trap or wait_for
settled() {
	local pid=$1
	shift
	"$@" || ! kill -0 "$pid" 2>/dev/null
}

# wait_up NAME PID CMD…: waits until CMD succeeds while the node runs, or
# exits with the end of the node's log.
wait_up() {
	local name=$1 pid=$2
	shift 2
	if ! wait_for "$timeout" settled "$pid" "$@" || ! kill -0 "$pid" 2>/dev/null || ! "$@"; then
		info "$name did not start; the end of $RUN/$name.log:"
		tail -n 15 "$RUN/$name.log" >&2
		exit 1
	fi
}

# log_peer NAME: the peer id the node logged at start.
log_peer() {
	grep 'Identity loaded' "$RUN/$1.log" 2>/dev/null | grep -oE '12D3KooW[1-9A-HJ-NP-Za-km-z]+' | tail -n 1
}

# log_addr NAME: the executor's loopback TCP multiaddr from its start line.
log_addr() {
	grep 'Executor started' "$RUN/$1.log" 2>/dev/null |
		grep -oE '/ip4/127\.0\.0\.1/tcp/[0-9]+/p2p/12D3KooW[1-9A-HJ-NP-Za-km-z]+' | head -n 1
}

# --- validator
state="$(validator_state_dir "$port")"
info "Starting a validator on port $port (log $RUN/validator.log)"
launch validator .devops/validator/run-validator.sh VALIDATOR_PORT="$port" SUBSCRIBE_ANNOUNCEMENTS=true
validator_pid=$LAUNCHED
wait_up validator "$validator_pid" test -s "$state/validator.addr"
validator_addr="$(loopback_addr "$state/validator.addr")"
info "Validator is up: $validator_addr"

# --- executors
configs=("$LLOOM_ROOT/.devops/executor/executor.toml" "$LLOOM_ROOT/.devops/executor/executor-2.toml")
executor_pids=()
for i in 1 2; do
	name="executor-$i"
	mkdir -p "$RUN/$name"
	info "Starting $name with ${configs[$((i - 1))]#"$LLOOM_ROOT/"} (log $RUN/$name.log)"
	launch "$name" .devops/executor/run-executor.sh EXECUTOR_PORT=0 VALIDATOR_ADDRESS="$validator_addr" \
		CONFIG_FILE="${configs[$((i - 1))]}" HEARTBEAT_INTERVAL="$interval" ANNOUNCE_MODELS=true LLOOM_HOME="$RUN/$name"
	executor_pids+=("$LAUNCHED")
done

# shellcheck disable=SC2317 # run by trap or wait_for
has_peer() { [[ -n $(log_peer "$1") ]]; }
peers=()
for i in 1 2; do
	wait_up "executor-$i" "${executor_pids[$((i - 1))]}" has_peer "executor-$i"
	peers+=("$(log_peer "executor-$i")")
done

# registered: the validator lists both executors.
# shellcheck disable=SC2317 # run by trap or wait_for
registered() {
	local out
	out="$("$LLOOM" client discover --json --validator "$validator_addr" --timeout 5s 2>/dev/null)" || return 1
	python3 -c '
import json, sys
d = json.loads(sys.argv[1])
seen = {x["peer_id"] for m in d["models"] for x in m["executors"]}
sys.exit(0 if set(sys.argv[2:]) <= seen else 1)' "$out" "${peers[@]}"
}
info "Waiting until the validator has registered both executors…"
if ! wait_for "$timeout" registered; then
	info "The validator did not register both executors within ${timeout}s; see the logs in $RUN"
	exit 1
fi
info "Both executors are registered."
info ""

# --- client
client=(client "$mode")
[[ $mode == query ]] && client+=("$query_model")
printf '$ VALIDATOR_ADDRESS=%s lloom %s\n\n' "$validator_addr" "${client[*]}"
rc=0
"$LLOOM" "${client[@]}" --validator "$validator_addr" --timeout "${timeout}s" || rc=$?

if [[ $cleanup_on_exit == false ]]; then
	cat <<EOF

The network keeps running in the background (CLEANUP_ON_EXIT=false):
  validator   pid $validator_pid  $validator_addr
  executor-1  pid ${executor_pids[0]}  $(log_addr executor-1)
  executor-2  pid ${executor_pids[1]}  $(log_addr executor-2)
Logs: $RUN/*.log

Ask it:
  VALIDATOR_ADDRESS=127.0.0.1:$port DISCOVER_MODELS=true ./.devops/client/run-client-local.sh
  $LLOOM client query gpt-4 --validator $validator_addr
Stop it:
  $SELF stop
  (or by hand: kill ${executor_pids[*]}, then, once they have exited, kill $validator_pid)
EOF
fi
exit "$rc"
