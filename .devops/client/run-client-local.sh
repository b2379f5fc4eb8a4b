#!/usr/bin/env bash
# Asks a validator what the network serves. Set at least one action:
#
#   DISCOVER_MODELS    true: models with at least one live executor   (false)
#   LIST_MODELS        true: every model, stale executors included    (false)
#   QUERY_MODEL        a model id: its executors, least loaded first  ("")
#   SHOW_STATS         true: the validator's counts                   (false)
#   CHAT_MODEL         a model id: send CHAT_PROMPT to it through the network
#                      and stream the answer                          ("")
#   CHAT_PROMPT        the prompt of CHAT_MODEL                ("Why is the sky blue?")
#   CHAT_MAX_TOKENS    most tokens the answer may have       (the backend's limit)
#   VALIDATOR_ADDRESS  validators, comma-separated: host:port or full
#                      multiaddr                                  ("127.0.0.1:8080")
#   TEST_TIMEOUT       seconds to reach the validators and get each answer (30)
#   OUTPUT_JSON        true: JSON for scripts instead of tables       (false)
#   LOG_LEVEL          trace, debug, info, warn, error                (info)
#
# Several actions run in the order above. The exit status is the last
# command's; a QUERY_MODEL that no executor serves exits non-zero.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

usage() {
	cat <<'EOF'
run-client-local.sh asks a lloom validator what the network serves.
Set one or more of:

  DISCOVER_MODELS=true   models with at least one live executor
  LIST_MODELS=true       every model, stale executors included
  QUERY_MODEL=gpt-4      the executors serving a model, least loaded first
  SHOW_STATS=true        the validator's counts
  CHAT_MODEL=llama3.2:3b send CHAT_PROMPT ("Why is the sky blue?") to that
                         model through the network and stream the answer
                         (CHAT_MAX_TOKENS caps its length)

and optionally VALIDATOR_ADDRESS (127.0.0.1:8080), TEST_TIMEOUT (30 seconds),
OUTPUT_JSON (false), LOG_LEVEL (info). For example:

  DISCOVER_MODELS=true ./.devops/client/run-client-local.sh
  QUERY_MODEL=gpt-4 VALIDATOR_ADDRESS=127.0.0.1:9090 ./.devops/client/run-client-local.sh
  CHAT_MODEL=llama3.2:3b CHAT_PROMPT="Say hello" ./.devops/client/run-client-local.sh
EOF
}

discover="$(bool_value DISCOVER_MODELS false)"
list="$(bool_value LIST_MODELS false)"
stats="$(bool_value SHOW_STATS false)"
json="$(bool_value OUTPUT_JSON false)"
query="${QUERY_MODEL:-}"
chat="${CHAT_MODEL:-}"
prompt="${CHAT_PROMPT:-Why is the sky blue?}"
max_tokens="${CHAT_MAX_TOKENS:-}"
timeout="$(seconds_value TEST_TIMEOUT 30)"
if [[ -n $max_tokens && (! $max_tokens =~ ^[0-9]+$ || $((10#$max_tokens)) == 0) ]]; then
	die "CHAT_MAX_TOKENS=\"$max_tokens\": want a positive whole number"
fi

commands=()
[[ $discover == true ]] && commands+=(discover)
[[ $list == true ]] && commands+=(list)
[[ -n $query ]] && commands+=(query)
[[ $stats == true ]] && commands+=(stats)
[[ -n $chat ]] && commands+=(chat)
if ((${#commands[@]} == 0)); then
	usage
	exit 0
fi

validators="$(resolve_validators "${VALIDATOR_ADDRESS:-127.0.0.1:8080}" quiet)"
ensure_built

common=(--validator "$validators" --timeout "${timeout}s" --log-level "${LOG_LEVEL:-info}")
[[ $json == true ]] && common+=(--json)

last=$((${#commands[@]} - 1))
for i in "${!commands[@]}"; do
	cmd=(client "${commands[$i]}")
	case ${commands[$i]} in
	query) cmd+=("$query") ;;
	chat)
		cmd+=("$chat" "$prompt")
		[[ -n $max_tokens ]] && cmd+=(--max-tokens "$max_tokens")
		;;
	esac
	cmd+=("${common[@]}")
	if ((i == last)); then
		exec "$LLOOM" "${cmd[@]}"
	fi
	"$LLOOM" "${cmd[@]}"
	echo
done
