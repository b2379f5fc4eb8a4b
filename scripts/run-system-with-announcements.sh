#!/usr/bin/env bash
# Runs a small lloom network on this machine: a validator and two executors
# serving different models (.devops/executor/executor.toml and
# executor-2.toml; both serve gpt-4), waits until the validator has
# registered both, then asks it with the client. With a backend, executor 1
# serves what that LLM engine lists instead, and CLIENT_MODE=chat chats
# with it through the network.
#
#   CLIENT_MODE         discover, query, list, stats or chat          (discover)
#   QUERY_MODEL         the model CLIENT_MODE=query asks for          (gpt-4)
#   CHAT_PROMPT         what CLIENT_MODE=chat asks      ("Why is the sky blue?")
#   CHAT_MODEL          the model it asks     (the first one executor 1 serves)
#   CHAT_MAX_TOKENS     most tokens in the answer
#                       (64 with the test engine, else the backend's limit)
#   BACKEND_URL         executor 1's LLM engine: an OpenAI-compatible base URL
#                       ending in /v1, e.g. http://127.0.0.1:11434/v1 (Ollama);
#                       executor 1 serves the models it lists. CLIENT_MODE=chat
#                       without BACKEND_URL builds and starts a test engine,
#                       Ollama v0.6.5 with a tiny generated model whose answers
#                       are gibberish (scripts/ollama-test-engine.sh; the first
#                       run builds Ollama, which takes minutes)
#   BACKEND_KEY_ENV     the name of the variable holding BACKEND_URL's API key
#   EXECUTOR_MODELS     with BACKEND_URL: serve these ids (comma-separated)
#                       instead of what the backend lists
#   CLEANUP_ON_EXIT     false: leave the network running in the background (true)
#   VALIDATOR_PORT      the validator's port                          (8080)
#   HEARTBEAT_INTERVAL  seconds between the executors' heartbeats     (5)
#   TEST_TIMEOUT        seconds to wait for the network and the client
#                       (30; 60 for chat)
#   LOG_LEVEL           the nodes' log level                          (info)
#
#   scripts/run-system-with-announcements.sh stop
#       stops a network left running, and its test engine, by the process
#       ids it recorded.
#
# Logs, process ids and the executors' identities are kept in .run/system/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUN="$LLOOM_RUN/system"
PIDS="$RUN/pids"
SELF="scripts/run-system-with-announcements.sh"
ENGINE="$LLOOM_ROOT/scripts/ollama-test-engine.sh"
# The test engine keeps its state (its pid file among it) apart from any
# other run's.
export LLOOM_OLLAMA_DIR="$RUN/ollama"

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

# engine_pid: the process id of the test engine this script started, if it
# still runs.
engine_pid() {
	local pid
	pid="$(cat "$LLOOM_OLLAMA_DIR/ollama.pid" 2>/dev/null || true)"
	[[ $pid =~ ^[0-9]+$ ]] && pid_running "$pid" && echo "$pid"
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
	if [[ -n $(engine_pid) ]]; then
		"$ENGINE" stop || true
		stopped=$((stopped + 1))
	fi
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
discover | query | list | stats | chat) ;;
*) die "CLIENT_MODE=\"$mode\": want discover, query, list, stats or chat" ;;
esac
query_model="${QUERY_MODEL:-gpt-4}"
chat_prompt="${CHAT_PROMPT:-Why is the sky blue?}"
chat_model="${CHAT_MODEL:-}"
max_tokens="${CHAT_MAX_TOKENS:-}"
if [[ -n $max_tokens && (! $max_tokens =~ ^[0-9]+$ || $((10#$max_tokens)) == 0) ]]; then
	die "CHAT_MAX_TOKENS=\"$max_tokens\": want a positive whole number"
fi
# lloom reads LLOOM_BACKEND_URL itself; here only executor 1 gets a backend.
backend_url="${BACKEND_URL:-${LLOOM_BACKEND_URL:-}}"
unset LLOOM_BACKEND_URL
if [[ -n $backend_url && ! $backend_url =~ ^https?://[^/]+ ]]; then
	die "BACKEND_URL=\"$backend_url\": want http://HOST:PORT/v1 (an OpenAI-compatible base URL)"
fi
use_engine=false
[[ $mode == chat && -z $backend_url ]] && use_engine=true
cleanup_on_exit="$(bool_value CLEANUP_ON_EXIT true)"
port="$(port_value VALIDATOR_PORT 8080)"
interval="$(seconds_value HEARTBEAT_INTERVAL 5)"
timeout="$(seconds_value TEST_TIMEOUT "$([[ $mode == chat ]] && echo 60 || echo 30)")"
log_level="${LOG_LEVEL:-info}"
need python3

running="$(recorded_pids | tr '\n' ' ')"
[[ -n $(engine_pid) ]] && running+="test-engine $(engine_pid)"
if [[ -n $running ]]; then
	die "a network started by this script is still running (${running% }); stop it with: $SELF stop"
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

# start_engine: builds the test engine (the first time: minutes, with a
# line of progress every 15 s) and starts it; sets backend_url and
# engine_model.
start_engine() {
	local result="$RUN/engine.out" pid t0 next
	info "Starting a test LLM engine: Ollama v0.6.5 serving a tiny generated model (scripts/ollama-test-engine.sh)."
	info "The first run builds Ollama from the Go module proxy, which takes minutes (about 4 on 2 cores); later runs use the cached binary."
	t0=$SECONDS
	next=$((t0 + 15))
	"$ENGINE" build >"$result" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= next)); then
			info "  … building Ollama: $((SECONDS - t0))s so far"
			next=$((SECONDS + 15))
		fi
		sleep 0.5
	done
	if ! wait "$pid"; then
		info "Building the test engine failed (see above). Set BACKEND_URL to use an engine of your own."
		exit 1
	fi
	LLOOM_OLLAMA_BIN="$(tail -n 1 "$result")"
	export LLOOM_OLLAMA_BIN
	if ! "$ENGINE" start >"$result"; then
		info "The test engine did not start (log $LLOOM_OLLAMA_DIR/ollama.log)."
		exit 1
	fi
	backend_url="$(sed -n 's/^OLLAMA_URL=//p' "$result")"
	engine_model="$(sed -n 's/^OLLAMA_MODEL=//p' "$result")"
	[[ -n $backend_url && -n $engine_model ]] || die "the test engine printed no OLLAMA_URL and OLLAMA_MODEL: $(<"$result")"
	info "Test engine ready after $((SECONDS - t0))s: $engine_model at $backend_url"
	info ""
}

if [[ $use_engine == true ]]; then
	start_engine
	[[ -n $chat_model ]] || chat_model=$engine_model
	[[ -n $max_tokens ]] || max_tokens=64
fi

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

# quoted ARG…: the arguments as they would be typed in a shell.
quoted() {
	local out=() a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9._:/@=+-]+$ ]]; then
			out+=("$a")
		elif [[ $a != *"'"* ]]; then
			out+=("'$a'")
		else
			out+=("$(printf '%q' "$a")")
		fi
	done
	echo "${out[*]}"
}

# --- validator
state="$(validator_state_dir "$port")"
info "Starting a validator on port $port (log $RUN/validator.log)"
launch validator .devops/validator/run-validator.sh VALIDATOR_PORT="$port" SUBSCRIBE_ANNOUNCEMENTS=true
validator_pid=$LAUNCHED
wait_up validator "$validator_pid" test -s "$state/validator.addr"
validator_addr="$(loopback_addr "$state/validator.addr")"
info "Validator is up: $validator_addr"

# --- executors: executor 1 serves the backend's models when there is a
# backend; executor 2 is always the announce-only example. Each is given
# every serving variable, so that none leaks in from the environment.
configs=("$LLOOM_ROOT/.devops/executor/executor.toml" "$LLOOM_ROOT/.devops/executor/executor-2.toml")
executor_pids=()
for i in 1 2; do
	name="executor-$i"
	mkdir -p "$RUN/$name"
	serving=(CONFIG_FILE="${configs[$((i - 1))]}" BACKEND_URL="" BACKEND_KEY_ENV="" EXECUTOR_MODELS="")
	what="${configs[$((i - 1))]#"$LLOOM_ROOT/"}"
	if [[ $i == 1 && -n $backend_url ]]; then
		serving=(CONFIG_FILE="" BACKEND_URL="$backend_url" BACKEND_KEY_ENV="${BACKEND_KEY_ENV:-}" EXECUTOR_MODELS="${EXECUTOR_MODELS:-}")
		what="the models of $backend_url"
	fi
	info "Starting $name with $what (log $RUN/$name.log)"
	launch "$name" .devops/executor/run-executor.sh EXECUTOR_PORT=0 VALIDATOR_ADDRESS="$validator_addr" \
		"${serving[@]}" HEARTBEAT_INTERVAL="$interval" ANNOUNCE_MODELS=true LLOOM_HOME="$RUN/$name"
	executor_pids+=("$LAUNCHED")
done

# shellcheck disable=SC2317 # run by trap or wait_for
has_peer() { [[ -n $(log_peer "$1") ]]; }
peers=()
for i in 1 2; do
	wait_up "executor-$i" "${executor_pids[$((i - 1))]}" has_peer "executor-$i"
	peers+=("$(log_peer "executor-$i")")
done

# served NAME…: "peer model" lines of what the validator lists as served
# and available.
served() {
	local out
	out="$("$LLOOM" client discover --json --validator "$validator_addr" --timeout 5s 2>/dev/null)" || return 1
	python3 -c '
import json, sys
for m in json.loads(sys.argv[1])["models"]:
    for x in m["executors"]:
        print(x["peer_id"], m["model_id"])' "$out"
}

# registered: the validator lists both executors.
# shellcheck disable=SC2317 # run by trap or wait_for
registered() {
	local out
	out="$(served)" || return 1
	grep -q "^${peers[0]} " <<<"$out" && grep -q "^${peers[1]} " <<<"$out"
}
info "Waiting until the validator has registered both executors…"
if ! wait_for "$timeout" registered; then
	info "The validator did not register both executors within ${timeout}s; see the logs in $RUN"
	if [[ -n $backend_url ]]; then
		info "Executor 1 serves what $backend_url lists: is the engine up, and does GET $backend_url/models list a model? The end of $RUN/executor-1.log:"
		tail -n 8 "$RUN/executor-1.log" >&2
	fi
	exit 1
fi
info "Both executors are registered."
info ""

# chat_ready: executor 1 serves chat_model (the first model it serves, when
# none was named).
# shellcheck disable=SC2317 # run by wait_for
chat_ready() {
	local mine
	mine="$(served | sed -n "s/^${peers[0]} //p")" || return 1
	[[ -n $chat_model ]] || chat_model="$(head -n 1 <<<"$mine")"
	[[ -n $chat_model ]] && grep -qxF -- "$chat_model" <<<"$mine"
}

# --- client
client=(client "$mode")
case $mode in
query) client+=("$query_model") ;;
chat)
	if [[ -n $backend_url ]] && ! wait_for "$timeout" chat_ready; then
		info "Executor 1 does not serve ${chat_model:-any model} from $backend_url; it serves: $(served | sed -n "s/^${peers[0]} //p" | tr '\n' ' ')"
		tail -n 8 "$RUN/executor-1.log" >&2
		exit 1
	fi
	[[ -n $chat_model ]] || die "no model to chat with: set CHAT_MODEL (a model executor 2 announces) or BACKEND_URL"
	client+=("$chat_model" "$chat_prompt")
	[[ -n $max_tokens ]] && client+=(--max-tokens "$max_tokens")
	if [[ $use_engine == true ]]; then
		info "The test model has random weights: its answer is gibberish. Set BACKEND_URL to chat with a real model."
		info ""
	fi
	;;
esac
printf '$ VALIDATOR_ADDRESS=%s lloom %s\n\n' "$validator_addr" "$(quoted "${client[@]}")"
rc=0
"$LLOOM" "${client[@]}" --validator "$validator_addr" --timeout "${timeout}s" || rc=$?

if [[ $cleanup_on_exit == false ]]; then
	cat <<EOF

The network keeps running in the background (CLEANUP_ON_EXIT=false):
  validator   pid $validator_pid  $validator_addr
  executor-1  pid ${executor_pids[0]}  $(log_addr executor-1)
  executor-2  pid ${executor_pids[1]}  $(log_addr executor-2)
Logs: $RUN/*.log
EOF
	[[ -n $(engine_pid) ]] && echo "Test engine: pid $(engine_pid), $backend_url, log $LLOOM_OLLAMA_DIR/ollama.log"
	cat <<EOF

Ask it:
  VALIDATOR_ADDRESS=127.0.0.1:$port DISCOVER_MODELS=true ./.devops/client/run-client-local.sh
  $LLOOM client query gpt-4 --validator $validator_addr
EOF
	if [[ -n $chat_model ]]; then
		cat <<EOF
  VALIDATOR_ADDRESS=127.0.0.1:$port CHAT_MODEL=$chat_model CHAT_PROMPT="Say hello" ./.devops/client/run-client-local.sh
EOF
	fi
	cat <<EOF
Stop it:
  $SELF stop
  (or by hand: kill ${executor_pids[*]}, then, once they have exited, kill $validator_pid)
EOF
fi
exit "$rc"
