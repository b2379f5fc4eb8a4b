#!/usr/bin/env bash
# Runs a lloom executor in the foreground. Ctrl-C or SIGTERM stops it after
# it withdraws its announcement (REMOVAL); editing CONFIG_FILE, or SIGHUP,
# reloads the models.
#
#   EXECUTOR_PORT       TCP and QUIC port, all interfaces (0: any free)  (8081)
#   VALIDATOR_ADDRESS   validators, comma-separated: host:port or full
#                       multiaddr                                   ("127.0.0.1:8080")
#   ANNOUNCE_MODELS     announce models and send heartbeats          (true)
#   HEARTBEAT_INTERVAL  seconds between heartbeats                   (10)
#   CONFIG_FILE         models, in TOML ("" for none)
#                       (.devops/executor/executor.toml; none with BACKEND_URL)
#   EXECUTOR_MODELS     more model ids with default settings, comma-separated
#   BACKEND_URL         your LLM engine's OpenAI-compatible base URL, ending in
#                       /v1, e.g. http://127.0.0.1:11434/v1 for Ollama; with no
#                       models configured the executor serves what it lists
#                       ("": announce-only, requests answered with 6003)
#   BACKEND_KEY_ENV     the name of the variable holding the backend's API key
#   CAPACITY            requests served at once per model (lloom's: 4)
#   QUEUE               requests that may wait per model (lloom's: as CAPACITY)
#   EVM_ADDRESS         payment address announced with the models
#   LOG_LEVEL           trace, debug, info, warn, error              (info)
#   LLOOM_HOME          where the identity key lives (default below)
#
# The identity is kept in .run/executor-$EXECUTOR_PORT/executor.key, so the
# peer id survives restarts. Give each executor that runs at the same time
# its own EXECUTOR_PORT, or its own LLOOM_HOME.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

port="$(port_value EXECUTOR_PORT 8081)"
announce="$(bool_value ANNOUNCE_MODELS true)"
interval="$(seconds_value HEARTBEAT_INTERVAL 10)"
backend="${BACKEND_URL:-}"
# The example models are announce-only demos; with a backend, serve what it
# lists unless a config file is asked for.
if [[ -n $backend ]]; then
	config="${CONFIG_FILE:-}"
else
	config="${CONFIG_FILE-$LLOOM_ROOT/.devops/executor/executor.toml}"
fi
log_level="${LOG_LEVEL:-info}"
validators="$(resolve_validators "${VALIDATOR_ADDRESS:-127.0.0.1:8080}")"

home="${LLOOM_HOME:-$LLOOM_RUN/executor-$port}"
mkdir -p "$home"

if [[ -n $config && ! -r $config ]]; then
	die "CONFIG_FILE=$config: no such file (set CONFIG_FILE=\"\" to run without one)"
fi
if [[ -n $backend && ! $backend =~ ^https?://[^/]+ ]]; then
	die "BACKEND_URL=\"$backend\": want http://HOST:PORT/v1 (an OpenAI-compatible base URL)"
fi
key_env="${BACKEND_KEY_ENV:-}"
if [[ -n $key_env && -z ${!key_env:-} ]]; then
	die "BACKEND_KEY_ENV=$key_env: that variable is not set (export $key_env=YOUR-KEY)"
fi
for name in CAPACITY QUEUE; do
	v="${!name:-}"
	if [[ -n $v && ! $v =~ ^[0-9]+$ ]]; then
		die "$name=\"$v\": want a whole number"
	fi
done

ensure_built

args=(executor
	--port "$port"
	--validator "$validators"
	--announce-models="$announce"
	--heartbeat-interval "$interval"
	--log-level "$log_level"
	--identity "$home/executor.key")
[[ -n $config ]] && args+=(--config "$config")
[[ -n ${EVM_ADDRESS:-} ]] && args+=(--evm-address "$EVM_ADDRESS")
[[ -n $backend ]] && args+=(--backend-url "$backend")
[[ -n $key_env ]] && args+=(--backend-key-env "$key_env")
[[ -n ${CAPACITY:-} ]] && args+=(--capacity "$CAPACITY")
[[ -n ${QUEUE:-} ]] && args+=(--queue "$QUEUE")
if [[ -n ${EXECUTOR_MODELS:-} ]]; then
	IFS=',' read -r -a extra <<<"$EXECUTOR_MODELS"
	for m in "${extra[@]}"; do
		m="${m// /}"
		[[ -n $m ]] && args+=(--model "$m")
	done
fi

info "Executor: port $port, validators $validators, config ${config:-none}, backend ${backend:-none (announce-only)}, identity $home/executor.key"
exec "$LLOOM" "${args[@]}"
