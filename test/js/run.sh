#!/usr/bin/env bash
# The gateway's tests with the official `openai` npm package: each test
# file starts a real lloom network from the binary (validator, executors,
# gateways on loopback) and drives `lloom gateway` through the SDK.
# gateway.test.mjs uses fake backends written in JavaScript;
# ollama.test.mjs a real Ollama, and skips without one. Builds nothing.
#
#   LLOOM_BIN=$PWD/lloom test/js/run.sh
#   LLOOM_BIN=$PWD/lloom LLOOM_OLLAMA_BIN=$(scripts/ollama-test-engine.sh build) test/js/run.sh
#
# Environment:
#   LLOOM_BIN         the lloom binary under test (required)
#   LLOOM_OLLAMA_BIN  an Ollama binary: start the test engine
#                     (scripts/ollama-test-engine.sh) for ollama.test.mjs and
#                     stop it at the end
#   OLLAMA_URL, OLLAMA_MODEL  an engine already running (start skipped)
#
# Exit status: node's test runner's (0 when every test passed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

die() {
	printf 'error: %s\n' "$*" >&2
	exit 2
}

[[ -n ${LLOOM_BIN:-} ]] || die "set LLOOM_BIN to the lloom binary (make build, then LLOOM_BIN=\$PWD/lloom)"
[[ -x $LLOOM_BIN && -f $LLOOM_BIN ]] || die "LLOOM_BIN=$LLOOM_BIN is not an executable file"
LLOOM_BIN="$(cd "$(dirname "$LLOOM_BIN")" && pwd)/$(basename "$LLOOM_BIN")"
export LLOOM_BIN
command -v node >/dev/null 2>&1 || die "node is required (Node.js 20 or later)"
command -v npm >/dev/null 2>&1 || die "npm is required"
command -v setsid >/dev/null 2>&1 || die "setsid is required (util-linux)"
major="$(node -p 'process.versions.node.split(".")[0]')"
((major >= 20)) || die "Node.js $(node --version) is too old: the tests need 20 or later"

engine_dir=""
node_pid=""
status=1
# The nodes' directories and logs; kept when a test failed.
work="$(mktemp -d "${TMPDIR:-/tmp}/lloom-js.XXXXXX")"
# shellcheck disable=SC2317 # run by trap
cleanup() {
	# The tests stop what they start; this reaches anything a crashed
	# test process left in its session, and only that.
	if [[ -n $node_pid ]]; then
		kill -KILL -- "-$node_pid" 2>/dev/null || true
	fi
	if ((status == 0 || status == 130)); then
		rm -rf "$work"
	else
		echo "note: the directories and logs of the lloom processes are kept in $work" >&2
	fi
	if [[ -n $engine_dir ]]; then
		LLOOM_OLLAMA_DIR="$engine_dir" "$root/scripts/ollama-test-engine.sh" stop >/dev/null 2>&1 || true
		rm -rf "$engine_dir"
	fi
}
trap cleanup EXIT
# shellcheck disable=SC2317 # run by trap
forward() {
	if [[ -n $node_pid ]]; then
		kill -TERM -- "-$node_pid" 2>/dev/null || true
	fi
	status=130
	exit 130
}
trap forward INT TERM

if [[ -n ${LLOOM_OLLAMA_BIN:-} && -z ${OLLAMA_URL:-} ]]; then
	engine_dir="$(mktemp -d "${TMPDIR:-/tmp}/lloom-js-ollama.XXXXXX")"
	out="$(LLOOM_OLLAMA_DIR="$engine_dir" "$root/scripts/ollama-test-engine.sh" start)"
	while IFS='=' read -r k v; do
		case $k in
		OLLAMA_URL | OLLAMA_MODEL) export "$k=$v" ;;
		esac
	done <<<"$out"
	[[ -n ${OLLAMA_URL:-} && -n ${OLLAMA_MODEL:-} ]] || die "the test engine printed no OLLAMA_URL/OLLAMA_MODEL: $out"
fi
if [[ -z ${OLLAMA_URL:-} ]]; then
	printf 'note: no LLOOM_OLLAMA_BIN or OLLAMA_URL: the real-engine tests skip\n' >&2
fi

cd "$here"
npm ci --no-audit --no-fund
# Its own session, so that cleanup can reach whatever it leaves behind.
TMPDIR="$work" LLOOM_JS_KEEP=1 setsid node --test --test-timeout=180000 &
node_pid=$!
if wait "$node_pid"; then status=0; else status=$?; fi
exit "$status"
