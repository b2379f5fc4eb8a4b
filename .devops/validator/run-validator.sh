#!/usr/bin/env bash
# Runs a lloom validator in the foreground (Ctrl-C or SIGTERM stops it).
#
#   VALIDATOR_PORT           TCP and QUIC port, all interfaces      (8080)
#   SUBSCRIBE_ANNOUNCEMENTS  follow the announcement topic          (true)
#   LOG_LEVEL                trace, debug, info, warn, error         (info)
#   STALE_AFTER              stale without a heartbeat this long     (lloom's: 30s)
#   REMOVE_AFTER             removed without one this long           (lloom's: 2m)
#   VALIDATOR_PEERS          other validators to peer with, comma-separated
#   LLOOM_HOME               where the identity key lives (default below)
#
# The identity is kept in .run/validator-$VALIDATOR_PORT/validator.key, so
# the peer id survives restarts; the full multiaddrs are written to
# .run/validator-$VALIDATOR_PORT/validator.addr, where run-executor.sh,
# run-client-local.sh and the system scripts find them.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

port="$(port_value VALIDATOR_PORT 8080)"
subscribe="$(bool_value SUBSCRIBE_ANNOUNCEMENTS true)"
log_level="${LOG_LEVEL:-info}"

state="$(validator_state_dir "$port")"
mkdir -p "$state"
identity="${LLOOM_HOME:-$state}/validator.key"

old="$(cat "$state/validator.pid" 2>/dev/null || true)"
if [[ $old != "$$" ]] && pid_is_lloom "$old"; then
	die "a validator started by this script already runs on port $port (pid $old); stop it with: kill $old"
fi

ensure_built

args=(validator
	--port "$port"
	--subscribe-announcements="$subscribe"
	--log-level "$log_level"
	--identity "$identity"
	--addr-file "$state/validator.addr")
[[ -n ${STALE_AFTER:-} ]] && args+=(--stale-after "$STALE_AFTER")
[[ -n ${REMOVE_AFTER:-} ]] && args+=(--remove-after "$REMOVE_AFTER")
[[ -n ${VALIDATOR_PEERS:-} ]] && args+=(--validator "$VALIDATOR_PEERS")

# A reader must never take an old file for this run's address.
rm -f "$state/validator.addr"
# exec keeps this process id, so the recorded pid is the validator's.
echo "$$" >"$state/validator.pid"
info "Validator: port $port, identity $identity, address file $state/validator.addr"
exec "$LLOOM" "${args[@]}"
