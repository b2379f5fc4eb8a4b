#!/usr/bin/env bash
# lloom's pages in a real browser: headless Chromium from Debian driven by
# puppeteer-core (pinned in package.json and package-lock.json). Each test
# file starts a real lloom network from the binary on loopback:
# dashboard.test.mjs the validator's dashboard (--http-listen), which must
# show an executor and then show it stale once it is killed;
# chat.test.mjs the gateway's chat page, which must stream an answer and
# show its executor and receipt. The browser runs with its background
# networking off, and a page's request to any non-loopback address fails
# the test. Screenshots go to $LLOOM_SCREENSHOT_DIR. Builds nothing.
#
#   LLOOM_BIN=$PWD/lloom LLOOM_SCREENSHOT_DIR=$PWD/docs test/browser/run.sh
#
# Environment:
#   LLOOM_BIN             the lloom binary under test (required)
#   LLOOM_CHROMIUM        the browser (default /usr/bin/chromium: apt-get install chromium)
#   LLOOM_SCREENSHOT_DIR  where dashboard.png and chat.png go (default: a temporary directory)
#
# Exit status: node's test runner's (0 when every test passed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
	printf 'error: %s\n' "$*" >&2
	exit 2
}

[[ -n ${LLOOM_BIN:-} ]] || die "set LLOOM_BIN to the lloom binary (make build, then LLOOM_BIN=\$PWD/lloom)"
[[ -x $LLOOM_BIN && -f $LLOOM_BIN ]] || die "LLOOM_BIN=$LLOOM_BIN is not an executable file"
LLOOM_BIN="$(cd "$(dirname "$LLOOM_BIN")" && pwd)/$(basename "$LLOOM_BIN")"
export LLOOM_BIN
chromium="${LLOOM_CHROMIUM:-/usr/bin/chromium}"
[[ -x $chromium ]] || die "no browser at $chromium: apt-get install chromium, or set LLOOM_CHROMIUM"
export LLOOM_CHROMIUM="$chromium"
command -v node >/dev/null 2>&1 || die "node is required (Node.js 20 or later)"
command -v npm >/dev/null 2>&1 || die "npm is required"
command -v setsid >/dev/null 2>&1 || die "setsid is required (util-linux)"
major="$(node -p 'process.versions.node.split(".")[0]')"
((major >= 20)) || die "Node.js $(node --version) is too old: the tests need 20 or later"
if [[ -n ${LLOOM_SCREENSHOT_DIR:-} ]]; then
	mkdir -p "$LLOOM_SCREENSHOT_DIR"
	LLOOM_SCREENSHOT_DIR="$(cd "$LLOOM_SCREENSHOT_DIR" && pwd)"
	export LLOOM_SCREENSHOT_DIR
fi

node_pid=""
status=1
work="$(mktemp -d "${TMPDIR:-/tmp}/lloom-browser.XXXXXX")"
# shellcheck disable=SC2317 # run by trap
cleanup() {
	# The tests stop what they start (lloom processes, the browser); this
	# reaches anything a crashed test process left in its session, and
	# only that.
	if [[ -n $node_pid ]]; then
		kill -KILL -- "-$node_pid" 2>/dev/null || true
	fi
	if ((status == 0 || status == 130)); then
		rm -rf "$work"
	else
		echo "note: the directories and logs of the lloom processes are kept in $work" >&2
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

cd "$here"
npm ci --no-audit --no-fund
# Its own session, so that cleanup can reach whatever it leaves behind.
TMPDIR="$work" LLOOM_JS_KEEP=1 setsid node --test --test-timeout=180000 &
node_pid=$!
if wait "$node_pid"; then status=0; else status=$?; fi
exit "$status"
