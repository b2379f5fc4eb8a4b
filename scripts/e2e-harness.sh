# shellcheck shell=bash
# The harness of scripts/test-model-announcement.sh: check reporting,
# processes, client calls, and log and JSON helpers. The suite sources it
# after lib.sh, with TEST_TIMEOUT, LOG_LEVEL, CLEANUP_ON_EXIT, HB, STALE and
# REMOVE set, and sets DIR (the run directory) before it starts nodes.
# shellcheck disable=SC2034 # OK, WHY and STOP_RC are read by the suite

PASSED=0
FAILED=0
SUMMARY_DONE=false
declare -A PID=()  # node name → process id
declare -A PEER=() # node name → peer id
DIR=""

# ---------------------------------------------------------------- output

pass() {
	PASSED=$((PASSED + 1))
	printf '  ✓ %s\n' "$1"
}

fail() {
	FAILED=$((FAILED + 1))
	printf '  ✗ %s\n' "$1"
	if [[ -n ${2:-} ]]; then
		printf '      %s\n' "$(short "$2" 600)"
	fi
}

group() { printf '\n%s\n' "$*"; }

# short TEXT [N]: TEXT on one line, at most N (300) characters.
short() {
	local s="${1//$'\n'/ }" n=${2:-300}
	s="$(tr -s ' ' <<<"$s")"
	((${#s} > n)) && s="${s:0:n}…"
	printf '%s' "$s"
}

# expect DESC SECONDS COND [ARGS…]: ✓ when COND succeeds within SECONDS
# (0: checked once), else ✗ with what COND saw last (it sets WHY). OK is
# true or false after it; it returns 0 either way, so that a failed check
# does not stop the suite under set -e.
expect() {
	local desc=$1 secs=$2
	shift 2
	WHY=""
	if wait_for "$secs" "$@"; then
		OK=true
		pass "$desc"
	else
		OK=false
		fail "$desc" "$WHY"
	fi
}

# ------------------------------------------------------------- processes

# start NAME LLOOM-ARGS…: starts lloom in the background; its stdout goes to
# NAME.out and its log (stderr) to NAME.log in the run directory.
start() {
	local name=$1
	shift
	"$LLOOM" "$@" >"$DIR/$name.out" 2>"$DIR/$name.log" </dev/null &
	PID[$name]=$!
}

alive() { [[ -n ${PID[$1]:-} ]] && kill -0 "${PID[$1]}" 2>/dev/null; }

# stop NAME SIGNAL: signals the node and waits up to 10 s for it to exit;
# STOP_RC is its exit status (or "running").
stop() {
	local name=$1 sig=$2 pid=${PID[$1]:-} i
	STOP_RC=running
	[[ -n $pid ]] || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		return 0
	fi
	STOP_RC=0
	wait "$pid" 2>/dev/null || STOP_RC=$?
	unset "PID[$name]"
}

# keygen NAME: creates NAME's identity key and records its peer id.
keygen() {
	PEER[$1]="$("$LLOOM" keygen --out "$DIR/keys/$1.key")"
}

start_validator() { # NAME PORT
	start "$1" validator --port "$2" --identity "$DIR/keys/$1.key" --addr-file "$DIR/$1.addr" \
		--stale-after "${STALE}s" --remove-after "${REMOVE}s" --log-format json --log-level "$LOG_LEVEL"
}

start_executor() { # NAME VALIDATOR [LLOOM-ARGS…]
	local name=$1 v=$2
	shift 2
	start "$name" executor --port 0 --identity "$DIR/keys/$name.key" --validator "$v" \
		--heartbeat-interval "${HB}s" --log-format json --log-level "$LOG_LEVEL" "$@"
}

# write_config FILE: stdin becomes FILE in one rename, so that an executor
# watching it never reads half a file.
write_config() {
	cat >"$1.tmp"
	mv -f "$1.tmp" "$1"
}

# by_role: the running nodes' names, executors first, so that validators
# are still there to receive their REMOVALs.
by_role() {
	local name
	for name in "${!PID[@]}"; do [[ $name != v* ]] && echo "$name"; done
	for name in "${!PID[@]}"; do [[ $name == v* ]] && echo "$name"; done
	return 0
}

cleanup() {
	local name
	for name in $(by_role); do
		stop "$name" TERM
		if [[ $STOP_RC == running ]]; then kill -KILL "${PID[$name]}" 2>/dev/null || true; fi
	done
	engine_stop
	return 0
}

# ------------------------------------------------------ the test engine

ENGINE_URL=""
ENGINE_MODEL=""
ENGINE_STARTED=false

# engine SUBCOMMAND: scripts/ollama-test-engine.sh with its state in the
# run directory, apart from any engine a user runs.
engine() { LLOOM_OLLAMA_DIR="$DIR/ollama" "$LLOOM_ROOT/scripts/ollama-test-engine.sh" "$@"; }

# c_engine: builds the test engine if needed (minutes, the first time) and
# starts it; sets ENGINE_URL and ENGINE_MODEL.
c_engine() {
	local pid rc=0 bin i
	engine build >"$DIR/engine.bin" 2>"$DIR/engine.err" &
	pid=$!
	for ((i = 0; i < 30; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		printf '      (building Ollama v0.6.5 for the test engine: about 4 minutes the first time)\n'
	fi
	wait "$pid" || rc=$?
	bin="$(tail -n 1 "$DIR/engine.bin")"
	WHY="scripts/ollama-test-engine.sh build: exit $rc: $(tail -n 5 "$DIR/engine.err")"
	[[ $rc == 0 && -x $bin ]] || return 1
	ENGINE_STARTED=true
	rc=0
	LLOOM_OLLAMA_BIN="$bin" engine start >"$DIR/engine.env" 2>>"$DIR/engine.err" || rc=$?
	ENGINE_URL="$(sed -n 's/^OLLAMA_URL=//p' "$DIR/engine.env")"
	ENGINE_MODEL="$(sed -n 's/^OLLAMA_MODEL=//p' "$DIR/engine.env")"
	WHY="scripts/ollama-test-engine.sh start: exit $rc: $(tail -n 5 "$DIR/engine.err")"
	[[ $rc == 0 && -n $ENGINE_URL && -n $ENGINE_MODEL ]]
}

engine_stop() {
	if [[ $ENGINE_STARTED == true ]]; then
		engine stop >/dev/null 2>&1 || true
		ENGINE_STARTED=false
	fi
}

on_exit() {
	local rc=$?
	[[ $SUMMARY_DONE == true ]] && return
	# Aborted (an error in the suite itself, or Ctrl-C): count it, clean up
	# and still end with the summary line.
	printf '\n  ✗ the suite stopped early (status %s)\n' "$rc"
	FAILED=$((FAILED + 1))
	if [[ $CLEANUP_ON_EXIT == true ]]; then
		cleanup
	elif [[ -n $DIR ]]; then
		printf 'Processes and logs kept in %s\n' "$DIR"
		[[ $ENGINE_STARTED == true ]] && printf 'Stop the test engine with: LLOOM_OLLAMA_DIR=%s scripts/ollama-test-engine.sh stop\n' "$DIR/ollama"
	fi
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	exit 1
}

# ------------------------------------------------------ client and logs

# cli VALIDATOR CLIENT-ARGS…: runs one client command; OUT is its stdout,
# ERR its stderr, RC its exit status.
cli() {
	local v=$1
	shift
	RC=0
	OUT="$(timeout "$((TEST_TIMEOUT + 5))" "$LLOOM" client "$@" --validator "$v" \
		--timeout "${TEST_TIMEOUT}s" --log-level "$LOG_LEVEL" 2>"$DIR/client.err")" || RC=$?
	ERR="$(<"$DIR/client.err")"
}

# py MODE ARGS…: the Python helpers below.
py() { python3 "$DIR/e2e.py" "$@"; }

# jtrue JSON EXPR: EXPR (Python, d = the parsed JSON) is true.
jtrue() { printf '%s' "$1" | py true "$2" 2>/dev/null; }

# jget JSON EXPR: prints EXPR.
jget() { printf '%s' "$1" | py get "$2" 2>/dev/null || true; }

# logcount FILE MESSAGE [KEY=VALUE | KEY~VALUE]…: how many JSON log lines
# have that message and fields (~: the list or text contains VALUE).
logcount() { py logcount "$@"; }

# Conditions for expect. Each sets WHY to what it saw.

c_query() { # VALIDATOR MODEL EXPR [CLIENT-ARGS…]: query --json succeeds and EXPR holds
	local v=$1 model=$2 expr=$3
	shift 3
	cli "$v" query "$model" --json "$@"
	WHY="client query $model $*: exit $RC; $(short "$OUT") $(short "$ERR" 200)"
	[[ $RC == 0 ]] && jtrue "$OUT" "$expr"
}

c_no_executor() { # VALIDATOR MODEL: query exits non-zero saying no executor serves it
	cli "$1" query "$2"
	WHY="client query $2: exit $RC; $(short "$OUT") $(short "$ERR" 200)"
	[[ $RC != 0 && $OUT == *"no executor serves it"* ]]
}

c_models() { # VALIDATOR discover|list EXPR [CLIENT-ARGS…]
	local v=$1 cmd=$2 expr=$3
	shift 3
	cli "$v" "$cmd" --json "$@"
	WHY="client $cmd $*: exit $RC; $(short "$OUT") $(short "$ERR" 200)"
	[[ $RC == 0 ]] && jtrue "$OUT" "$expr"
}

c_stats() { # VALIDATOR EXPR
	cli "$1" stats --json
	WHY="client stats: exit $RC; $(short "$OUT") $(short "$ERR" 200)"
	[[ $RC == 0 ]] && jtrue "$OUT" "$2"
}

c_log() { # FILE MESSAGE [FIELD…]: at least MIN (1) matching log lines
	local n
	n="$(logcount "$@")"
	WHY="$(basename "$1"): $n line(s) \"$2\" ${*:3}, want at least ${MIN:-1}"
	((n >= ${MIN:-1}))
}

c_alive() { # NAME: running, and logged that it started
	WHY="$1 is not running; its log ends: $(tail -c 400 "$DIR/$1.log" 2>/dev/null)"
	alive "$1" && [[ $(logcount "$DIR/$1.log" "$2") -ge 1 ]]
}

c_validator_up() { # NAME: running, started, and its address file written
	c_alive "$1" "Validator started" && [[ -s $DIR/$1.addr ]]
}

stat_of() { # VALIDATOR FIELD: prints a statistic (or -1)
	cli "$1" stats --json
	if [[ $RC == 0 ]]; then jget "$OUT" "d['$2']"; else echo -1; fi
}

write_py() {
	cat >"$DIR/e2e.py" <<'EOF'
import datetime, hashlib, json, sys

def sha256(text):
    """Hex SHA-256 of the UTF-8 bytes of text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

def codes(d):
    """The error codes of an answer's attempts, in order."""
    return [a.get("error_code") for a in d.get("attempts", [])]

def peers(d):
    """Peer ids of a query result, in the order given."""
    return [x["peer_id"] for x in d.get("executors", [])]

def models(d):
    """Model id -> entry of a discover/list result."""
    return {m["model_id"]: m for m in d.get("models", [])}

def mpeers(d, mid):
    """Sorted peer ids serving mid in a discover/list result."""
    return sorted(x["peer_id"] for x in models(d).get(mid, {}).get("executors", []))

def ex(d, pid):
    """The executor entry pid of a query result, or {}."""
    return next((x for x in d.get("executors", []) if x["peer_id"] == pid), {})

def age(ts):
    t = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()

def load_json():
    return json.loads(sys.stdin.read())

mode = sys.argv[1]
def evaluate(expr, d):
    # Parenthesised, so that an expression may span lines.
    return eval("(" + expr.strip() + ")", globals(), {"d": d})

if mode == "true":
    sys.exit(0 if evaluate(sys.argv[2], load_json()) else 1)
elif mode == "get":
    r = evaluate(sys.argv[2], load_json())
    print(r if isinstance(r, str) else json.dumps(r))
elif mode == "logcount":
    path, msg, conds = sys.argv[2], sys.argv[3], sys.argv[4:]
    n = 0
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or rec.get("message") != msg:
            continue
        ok = True
        for c in conds:
            if "~" in c and ("=" not in c or c.index("~") < c.index("=")):
                k, v = c.split("~", 1)
                val = rec.get(k)
                ok = ok and val is not None and (v in val if isinstance(val, (list, str)) else False)
            else:
                k, v = c.split("=", 1)
                val = rec.get(k)
                if isinstance(val, bool):
                    val = "true" if val else "false"
                ok = ok and val is not None and str(val) == v
        n += ok
    print(n)
EOF
}
