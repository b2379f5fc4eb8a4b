#!/usr/bin/env bash
# A step-by-step walkthrough of lloom's model announcements: build, a
# validator, an executor, discovery and queries, updates at runtime, load,
# the logs, chat, shutdown, then the full end-to-end suite. On a terminal it
# pauses for Enter between steps; with stdin not a terminal it runs
# straight through.
#
#   VALIDATOR_PORT      the validator's port            (a free port)
#   HEARTBEAT_INTERVAL  seconds between heartbeats      (2)
#   RUN_SUITE           false: skip the final suite     (true)
#   LOG_LEVEL           the nodes' log level            (info)
#
# Everything it starts is stopped when it ends; its files are in a
# temporary directory that it removes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need python3
interval="$(seconds_value HEARTBEAT_INTERVAL 2)"
run_suite="$(bool_value RUN_SUITE true)"
export LOG_LEVEL="${LOG_LEVEL:-info}"

DEMO="$(mktemp -d "${TMPDIR:-/tmp}/lloom-demo.XXXXXX")"
PIDS=()
STEP=0
if [[ -t 1 ]]; then
	BOLD=$'\e[1m' DIM=$'\e[2m' RESET=$'\e[0m'
else
	BOLD="" DIM="" RESET=""
fi

# shellcheck disable=SC2317 # run by trap or wait_for
cleanup() {
	local i
	# Executors first, so that the validator receives their REMOVALs.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[$i]}" 5
	done
	[[ -n ${VSTATE:-} && ${CREATED_VSTATE:-false} == true ]] && rm -rf "$VSTATE"
	rm -rf "$DEMO"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
	STEP=$((STEP + 1))
	printf '\n%s== %d. %s ==%s\n' "$BOLD" "$STEP" "$*" "$RESET"
}

say() { printf '%s\n' "$*"; }

pause() {
	if [[ -t 0 ]]; then
		read -r -p $'\nPress Enter to continue… ' _
	fi
}

# quoted ARG…: the arguments as a shell would need them typed, with paths
# inside the repository relative to it.
quoted() {
	local a out=()
	for a in "$@"; do
		a="${a/#"$LLOOM_ROOT"\//./}"
		if [[ $a =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then
			out+=("$a")
		elif [[ $a != *"'"* ]]; then
			out+=("'$a'")
		else
			out+=("$(printf '%q' "$a")")
		fi
	done
	printf '%s' "${out[*]}"
}

# show CMD…: prints the command, then runs it (its failure is shown, not fatal).
show() {
	printf '%s$ %s%s\n' "$DIM" "$(quoted "$@")" "$RESET"
	"$@" || printf '%s(exit status %d)%s\n' "$DIM" "$?" "$RESET"
}

# client VAR=VALUE…: runs the client script with those variables, as an
# operator would type it.
client() {
	local kv shown=()
	for kv in "$@"; do shown+=("${kv%%=*}=$(quoted "${kv#*=}")"); done
	printf '%s$ %s VALIDATOR_ADDRESS=127.0.0.1:%s ./.devops/client/run-client-local.sh%s\n' "$DIM" "${shown[*]}" "$PORT" "$RESET"
	env "$@" VALIDATOR_ADDRESS="127.0.0.1:$PORT" "$LLOOM_ROOT/.devops/client/run-client-local.sh" ||
		printf '%s(exit status %d)%s\n' "$DIM" "$?" "$RESET"
}

# started LOG: the node logged its peer id (it is up).
# shellcheck disable=SC2317 # run by trap or wait_for
started() { grep -q 'Identity loaded' "$1" 2>/dev/null; }

# bg NAME CMD…: starts a node script in the background, logging to NAME.log.
bg() {
	local name=$1
	shift
	"$@" >"$DEMO/$name.log" 2>&1 </dev/null &
	PIDS+=("$!")
	if ! wait_for 30 started "$DEMO/$name.log"; then
		say "$name did not start:"
		cat "$DEMO/$name.log"
		exit 1
	fi
}

# reloaded N: executor-1 has logged "Config reloaded" N times.
# shellcheck disable=SC2317 # run by trap or wait_for
reloaded() { (($(grep -c 'Config reloaded' "$DEMO/executor-1.log" || true) >= $1)); }
# shellcheck disable=SC2317 # run by trap or wait_for
reloaded2() { (($(grep -c 'Config reloaded' "$DEMO/executor-2.log" || true) >= $1)); }

# serves MODEL [PYTHON-CONDITION]: the validator lists MODEL (and the
# condition holds for d, the query's JSON).
# shellcheck disable=SC2317 # run by trap or wait_for
serves() {
	local out
	out="$("$LLOOM" client query "$1" --json --validator "127.0.0.1:$PORT" --timeout 5s 2>/dev/null)" || return 1
	python3 -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
		"$out" "${2:-True}"
}

# ----------------------------------------------------------------------
step "Build"
say "Every role is one binary, lloom. The scripts build it when it is missing"
say "or older than the sources (make build does the same)."
ensure_built
show "$LLOOM" version
pause

# ----------------------------------------------------------------------
step "Start a validator"
PORT="$(port_value VALIDATOR_PORT "$(free_port)")"
VSTATE="$(validator_state_dir "$PORT")"
[[ -d $VSTATE ]] || CREATED_VSTATE=true
say "The validator checks every announcement and keeps the registry. Its identity"
say "stays in $VSTATE, and its full address goes to validator.addr there."
printf '%s$ VALIDATOR_PORT=%s SUBSCRIBE_ANNOUNCEMENTS=true ./.devops/validator/run-validator.sh &%s\n' "$DIM" "$PORT" "$RESET"
bg validator env VALIDATOR_PORT="$PORT" SUBSCRIBE_ANNOUNCEMENTS=true LLOOM_HOME="$DEMO/validator" \
	"$LLOOM_ROOT/.devops/validator/run-validator.sh"
wait_for 10 test -s "$VSTATE/validator.addr" || true
show cat "$VSTATE/validator.addr"
pause

# ----------------------------------------------------------------------
step "Start an executor"
cp "$LLOOM_ROOT/.devops/executor/executor.toml" "$DEMO/executor-1.toml"
say "An executor announces the models in its config file (a copy of"
say ".devops/executor/executor.toml) once a validator has joined the topic,"
say "then sends a heartbeat every ${interval}s."
printf '%s$ EXECUTOR_PORT=0 VALIDATOR_ADDRESS=127.0.0.1:%s CONFIG_FILE=%s HEARTBEAT_INTERVAL=%s ./.devops/executor/run-executor.sh &%s\n' \
	"$DIM" "$PORT" "$DEMO/executor-1.toml" "$interval" "$RESET"
bg executor-1 env EXECUTOR_PORT=0 VALIDATOR_ADDRESS="127.0.0.1:$PORT" CONFIG_FILE="$DEMO/executor-1.toml" \
	HEARTBEAT_INTERVAL="$interval" LLOOM_HOME="$DEMO/executor-1" "$LLOOM_ROOT/.devops/executor/run-executor.sh"
wait_for 15 serves gpt-4 || true
show grep -E 'Published model announcement' "$DEMO/executor-1.log"
pause

# ----------------------------------------------------------------------
step "Discovery and queries"
say "A client asks the validator. Every answer carries the executor's own signed"
say "announcement, which the client verifies."
client DISCOVER_MODELS=true
echo
client QUERY_MODEL=gpt-4
echo
client QUERY_MODEL=gpt-4 OUTPUT_JSON=true
pause

# ----------------------------------------------------------------------
step "Updates at runtime"
say "Edit the config file and the executor reloads it within a second (SIGHUP"
say "works too), then announces its whole new model set. Here we add"
say "qwen2.5:7b and raise llama3.2:3b's input price from 1000 to 1500 wei."
cat >>"$DEMO/executor-1.toml" <<'EOF'

[[models]]
id = "qwen2.5:7b"
backend = "ollama"
max_context_length = 32768
features = ["chat"]
capacity = 2
EOF
sed -i.bak 's/input_token_price_wei = "1000"/input_token_price_wei = "1500"/' "$DEMO/executor-1.toml"
wait_for 10 reloaded 1 || true
wait_for 10 serves qwen2.5:7b || true
wait_for 10 serves llama3.2:3b "d['executors'][0]['pricing']['input_token_price_wei'] == '1500'" || true
show grep -E 'Config reloaded' "$DEMO/executor-1.log"
client DISCOVER_MODELS=true
echo
client QUERY_MODEL=llama3.2:3b
pause

# ----------------------------------------------------------------------
step "Load and load balancing"
say "A second executor also serves gpt-4 (.devops/executor/executor-2.toml)."
say "Executors report each model's load in their heartbeats; the validator lists"
say "a model's executors least loaded first and marks one at capacity as"
say "overloaded. Real load comes from the executor's Go API (go run"
say "./examples/announce shows it); here the config's [debug.load] table stands"
say "in for requests: executor 2 is full (16 of 16)."
cp "$LLOOM_ROOT/.devops/executor/executor-2.toml" "$DEMO/executor-2.toml"
printf '\n[debug.load]\n"gpt-4" = "14/2"\n' >>"$DEMO/executor-2.toml"
bg executor-2 env EXECUTOR_PORT=0 VALIDATOR_ADDRESS="127.0.0.1:$PORT" CONFIG_FILE="$DEMO/executor-2.toml" \
	HEARTBEAT_INTERVAL="$interval" LLOOM_HOME="$DEMO/executor-2" "$LLOOM_ROOT/.devops/executor/run-executor.sh"
wait_for 15 serves gpt-4 "[x['status'] for x in d['executors']] == ['healthy', 'overloaded']" || true
client QUERY_MODEL=gpt-4
echo
say "Now executor 2 drops to 2 of 16 and executor 1 gets busy, 6 of 8: the order flips."
sed -i.bak 's|"gpt-4" = "14/2"|"gpt-4" = "2/0"|' "$DEMO/executor-2.toml"
printf '\n[debug.load]\n"gpt-4" = "6/0"\n' >>"$DEMO/executor-1.toml"
wait_for 10 reloaded2 1 || true
wait_for 15 serves gpt-4 "[x['capacity'] for x in d['executors']] == [16, 8] and d['executors'][1]['active_requests'] == 6" || true
client QUERY_MODEL=gpt-4
echo
client SHOW_STATS=true
pause

# ----------------------------------------------------------------------
step "What the logs say"
say "The validator logs each accepted announcement, each health change and each"
say "refused message (docs/OPERATIONS.md explains every line):"
show grep -E 'Validator started|Received model announcement|Rejected message|stale|removed|withdrew' "$DEMO/validator.log"
say ""
say "A misbehaving peer's message is refused with its error code:"
show "$LLOOM" debug publish-invalid --validator "127.0.0.1:$PORT" --kind forged-signature
wait_for 5 grep -q 'Rejected message' "$DEMO/validator.log" || true
show grep 'Rejected message' "$DEMO/validator.log"
pause

# ----------------------------------------------------------------------
step "Chat through the network"
say "These executors run announce-only: no --backend-url, so they answer a chat"
say "request with code 6003; the client tries each, then reports the code."
client CHAT_MODEL=gpt-4 CHAT_PROMPT="Why is the sky blue?"
echo
say "Given an OpenAI-compatible engine (BACKEND_URL=http://127.0.0.1:11434/v1 for"
say "Ollama), an executor serves the models it lists and streams real answers,"
say "each with a signed receipt. To see it end to end with a test engine (Ollama"
say "built from the Go module proxy, a tiny generated model; minutes the first"
say "time), run:"
say "  CLIENT_MODE=chat ./scripts/run-system-with-announcements.sh"
say "or, with no engine at all: go run ./examples/chat"
pause

# ----------------------------------------------------------------------
step "Shutdown"
say "Stopping an executor (Ctrl-C or SIGTERM) withdraws its announcement: its"
say "models leave the registry at once instead of going stale."
stop_pid "${PIDS[2]}" 5
show grep -E 'Published REMOVAL' "$DEMO/executor-2.log"
show grep -E 'withdrew' "$DEMO/validator.log"
client QUERY_MODEL=mistral:7b
pause

# ----------------------------------------------------------------------
if [[ $run_suite == true ]]; then
	step "The full end-to-end suite"
	say "It starts its own nodes on free ports with short intervals and checks every"
	say "feature above, one ✓ or ✗ per check."
	printf '%s$ ./scripts/test-model-announcement.sh%s\n' "$DIM" "$RESET"
	"$LLOOM_ROOT/scripts/test-model-announcement.sh" || suite=$?
fi
say ""
say "Done. Everything the demo started is stopped now."
# The demo fails when the suite does.
exit "${suite:-0}"
