# shellcheck shell=bash
# Shared helpers for lloom's operator scripts (.devops/*/run-*.sh and
# scripts/*.sh). Source it; it defines functions and LLOOM_ROOT, LLOOM and
# LLOOM_RUN, and changes no shell option.
#
#   LLOOM_ROOT  the repository root
#   LLOOM       the lloom binary: $LLOOM_BIN if set, else $LLOOM_ROOT/lloom
#   LLOOM_RUN   where the scripts keep identities, addresses and process
#               ids between runs: $LLOOM_ROOT/.run (gitignored)

LLOOM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LLOOM="${LLOOM_BIN:-$LLOOM_ROOT/lloom}"
LLOOM_RUN="$LLOOM_ROOT/.run"

# go-libp2p reuses TCP ports by default, which lets a leftover process
# silently share a port. lloom turns it off itself; this covers any other
# libp2p program started from these scripts.
export LIBP2P_TCP_REUSEPORT=false

info() { printf '%s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# need CMD [HINT]: fails with a clear line when CMD is not installed.
need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is required but not installed${2:+ ($2)}"
}

# bool_value NAME DEFAULT: prints true or false for the variable NAME
# (1/0, yes/no, on/off accepted), or exits naming the variable.
bool_value() {
	local name=$1 v
	v="${!name:-$2}"
	case "${v,,}" in
	true | 1 | yes | on) echo true ;;
	false | 0 | no | off) echo false ;;
	*) die "$name=\"$v\": want true or false" ;;
	esac
}

# port_value NAME DEFAULT: prints the port in variable NAME, or exits.
port_value() {
	local name=$1 v
	v="${!name:-$2}"
	if [[ ! $v =~ ^[0-9]+$ ]] || ((10#$v > 65535)); then
		die "$name=\"$v\": want a port number, 0-65535"
	fi
	echo "$((10#$v))"
}

# seconds_value NAME DEFAULT: prints the positive whole number of seconds
# in variable NAME, or exits.
seconds_value() {
	local name=$1 v
	v="${!name:-$2}"
	if [[ ! $v =~ ^[0-9]+$ ]] || ((10#$v == 0)); then
		die "$name=\"$v\": want a positive whole number of seconds"
	fi
	echo "$((10#$v))"
}

# ensure_built: builds $LLOOM when it is missing or older than any Go
# source, go.mod or go.sum file. With LLOOM_BIN set, the binary is used as
# it is. The build goes to a temporary file that replaces the binary in
# one rename, so running nodes keep their copy.
ensure_built() {
	if [[ -n ${LLOOM_BIN:-} ]]; then
		[[ -x $LLOOM_BIN ]] || die "LLOOM_BIN=$LLOOM_BIN is not an executable file"
		return 0
	fi
	local why=""
	if [[ ! -x $LLOOM ]]; then
		why="not built yet"
	elif [[ -n $(find "$LLOOM_ROOT" \( -path "$LLOOM_ROOT/.git" -o -path "$LLOOM_RUN" -o -path "$LLOOM_ROOT/.e2e" \) -prune \
		-o \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$LLOOM" -print -quit) ]]; then
		why="older than the sources"
	else
		return 0
	fi
	need go "Go 1.26 or newer, https://go.dev/dl/"
	local version tmp
	version="$(git -C "$LLOOM_ROOT" describe --tags --always --dirty 2>/dev/null || echo dev)"
	tmp="$LLOOM.build.$$"
	info "Building $LLOOM ($why)…"
	if ! (cd "$LLOOM_ROOT" && go build -buildvcs=false -ldflags "-X main.version=$version" -o "$tmp" ./cmd/lloom); then
		rm -f "$tmp"
		die "go build failed"
	fi
	mv -f "$tmp" "$LLOOM"
}

# pid_is_lloom PID: true when PID is alive and its program is named lloom…
# (so that a recorded pid that the system has since reused for something
# else is never signalled).
pid_is_lloom() {
	local pid=$1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	local argv0=""
	if [[ -r /proc/$pid/cmdline ]]; then
		IFS= read -r -d '' argv0 <"/proc/$pid/cmdline" || true
	else
		argv0="$(ps -p "$pid" -o comm= 2>/dev/null || true)"
	fi
	[[ $(basename -- "${argv0:-x}") == lloom* ]]
}

# pid_running PID: alive and not a zombie (an exited process that its new
# parent, often init, has not reaped yet).
pid_running() {
	kill -0 "$1" 2>/dev/null || return 1
	local state
	state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
	[[ $state != Z* ]]
}

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5)
# if it is still running. Only for pids this script family started.
stop_pid() {
	local pid=$1 grace=${2:-5} i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < grace * 10; i++)); do
		pid_running "$pid" || return 0
		sleep 0.1
	done
	warn "process $pid did not stop within ${grace}s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

# wait_for SECONDS CMD [ARGS…]: runs CMD every 0.2 s until it succeeds
# (returns 0) or SECONDS pass (returns 1).
wait_for() {
	local limit=$1 deadline
	shift
	deadline=$((SECONDS + limit))
	while true; do
		if "$@"; then
			return 0
		fi
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# free_port: prints a port free for both TCP and UDP on every interface
# (lloom's --port listens on both).
free_port() {
	python3 - <<'EOF'
import socket
for _ in range(100):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("0.0.0.0", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("0.0.0.0", port))
    except OSError:
        t.close()
        continue
    u.close()
    t.close()
    print(port)
    break
else:
    raise SystemExit("no free port found")
EOF
}

# validator_state_dir PORT: where run-validator.sh keeps the validator's
# identity, address file and process id for that port.
validator_state_dir() { echo "$LLOOM_RUN/validator-$1"; }

# loopback_addr FILE: the /ip4/127.0.0.1/tcp/… line of an address file.
loopback_addr() {
	grep -m1 '^/ip4/127\.0\.0\.1/tcp/' "$1" 2>/dev/null
}

# resolve_validators ADDRS: for each comma-separated entry of the short
# form 127.0.0.1:PORT or localhost:PORT whose validator was started by
# run-validator.sh and is still running, prints the full multiaddr from
# its address file instead (pinning its peer id, no trust on first use).
# Other entries stay as they are. With a second argument "quiet" it does
# not say so on stderr.
resolve_validators() {
	local out=() entries=() entry port dir pid full
	IFS=',' read -r -a entries <<<"$1"
	for entry in "${entries[@]}"; do
		entry="${entry// /}"
		if [[ $entry =~ ^(127\.0\.0\.1|localhost):([0-9]+)$ ]]; then
			port=${BASH_REMATCH[2]}
			dir="$(validator_state_dir "$port")"
			pid="$(cat "$dir/validator.pid" 2>/dev/null || true)"
			if pid_is_lloom "$pid" && full="$(loopback_addr "$dir/validator.addr")"; then
				[[ ${2:-} == quiet ]] || info "Validator $entry: using its full address from $dir/validator.addr: $full"
				entry=$full
			fi
		fi
		[[ -n $entry ]] && out+=("$entry")
	done
	local IFS=,
	echo "${out[*]}"
}
