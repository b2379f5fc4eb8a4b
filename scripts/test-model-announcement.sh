#!/usr/bin/env bash
# End-to-end suite over the real lloom binary: validators, executors and
# clients as separate processes on loopback, free ports, short intervals.
#
#   TEST_TIMEOUT     seconds each client call may take               (10)
#   CLEANUP_ON_EXIT  false: keep the processes and logs for debugging (true)
#   LOG_LEVEL        every node's log level, e.g. debug               (info)
#   LLOOM_BIN        test this binary instead of building ./lloom
#   LLOOM_OLLAMA_BIN the test engine's Ollama binary; without it the suite
#                    builds one (scripts/ollama-test-engine.sh build: about
#                    4 minutes the first time, cached after)
#
# It prints a ✓ or ✗ line per check and ends with one line
# "N passed, M failed"; the exit status is 0 only when nothing failed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_TIMEOUT="$(seconds_value TEST_TIMEOUT 10)"
CLEANUP_ON_EXIT="$(bool_value CLEANUP_ON_EXIT true)"
LOG_LEVEL="${LOG_LEVEL:-info}"

# Short intervals: heartbeats every second, stale after 3 s, removed after 6.
HB=1
STALE=3
REMOVE=6
WAIT=15 # seconds to wait for something that should happen within a heartbeat or two

# The user's environment must not leak into the nodes.
unset VALIDATOR_ADDRESS LLOOM_CONFIG LLOOM_HOME LOG_FORMAT
export LLOOM_NETWORK="lloom-e2e" # exercises the variable, and keeps the suite apart

need python3
need timeout "GNU coreutils"

START=$SECONDS

# shellcheck source-path=SCRIPTDIR source=e2e-harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-harness.sh"

trap on_exit EXIT
trap 'exit 130' INT TERM

# ============================================================== the suite

printf 'lloom end-to-end suite (heartbeat %ss, stale after %ss, removed after %ss)\n' "$HB" "$STALE" "$REMOVE"

group "Setup"
ensure_built
DIR="$(mktemp -d "${TMPDIR:-/tmp}/lloom-e2e.XXXXXX")"
mkdir -p "$DIR/keys"
write_py
if version="$("$LLOOM" version 2>&1)"; then
	pass "lloom runs: $version"
else
	fail "lloom runs" "$version"
fi
for n in va vb e1 e2 e3 e4 l1 l2 l3 i1; do keygen "$n"; done

PA="$(free_port)"
start_validator va "$PA"
expect "validator A starts on free port $PA and writes its address file" "$WAIT" c_validator_up va
if [[ $OK != true ]]; then
	# Nothing below can work without it.
	SUMMARY_DONE=true
	[[ $CLEANUP_ON_EXIT == true ]] && cleanup
	printf '\nLogs in %s\n%d passed, %d failed\n' "$DIR" "$PASSED" "$FAILED"
	exit 1
fi
VA="$(loopback_addr "$DIR/va.addr")"

cat >"$DIR/e1.toml" <<'EOF'
[[models]]
id = "llama3.2:3b"
backend = "ollama"
max_context_length = 8192
features = ["chat", "completion"]
capacity = 4
[models.pricing]
input_token_price_wei = "1000"
output_token_price_wei = "2000"

[[models]]
id = "gpt-4"
backend = "openai"
max_context_length = 8192
features = ["chat"]
capacity = 4
[models.pricing]
input_token_price_wei = "30000"
output_token_price_wei = "60000"
EOF
E1_CONFIG="$(<"$DIR/e1.toml")"

cat >"$DIR/e2.toml" <<'EOF'
[[models]]
id = "gpt-4"
backend = "vllm"
max_context_length = 32768
features = ["chat", "completion"]
capacity = 16
[models.pricing]
input_token_price_wei = "20000"
output_token_price_wei = "40000"

[[models]]
id = "mistral:7b"
backend = "vllm"
max_context_length = 32768
capacity = 8
EOF

start_executor e1 "$VA" --config "$DIR/e1.toml"
start_executor e2 "$VA" --config "$DIR/e2.toml"
start_executor e3 "$VA" --model phi3:mini
E1=${PEER[e1]} E2=${PEER[e2]} E3=${PEER[e3]}

# ------------------------------------------------------------------------
group "Announcement flow"

expect "executor 1 publishes its INITIAL announcement at startup, once the validator is there" "$WAIT" \
	c_log "$DIR/e1.log" "Published model announcement" kind=initial models~gpt-4 models~llama3.2:3b
expect "the validator stores it: 'Received model announcement' for executor 1, kind initial, new" "$WAIT" \
	c_log "$DIR/va.log" "Received model announcement" "executor=$E1" kind=initial new=true
expect "three executors with different models are all registered, each model with its executors" "$WAIT" \
	c_models "$VA" list "sorted(models(d)) == ['gpt-4', 'llama3.2:3b', 'mistral:7b', 'phi3:mini']
		and mpeers(d, 'gpt-4') == sorted(['$E1', '$E2']) and mpeers(d, 'llama3.2:3b') == ['$E1']
		and mpeers(d, 'mistral:7b') == ['$E2'] and mpeers(d, 'phi3:mini') == ['$E3']"

# ------------------------------------------------------------------------
group "Discovery"

c_discover_table() {
	cli "$VA" discover
	WHY="client discover: exit $RC; $(short "$OUT" 500)"
	[[ $RC == 0 ]] &&
		grep -Eq '^gpt-4 +2 +2 +0 +0 +openai,vllm +32768$' <<<"$OUT" &&
		grep -Eq '^llama3\.2:3b +1 +1 +0 +0 +ollama +8192$' <<<"$OUT" &&
		grep -Eq '^mistral:7b +1 +1 ' <<<"$OUT" && grep -Eq '^phi3:mini +1 +1 ' <<<"$OUT" &&
		grep -q '^Found 4 models served by 3 executors' <<<"$OUT"
}
expect "client discover lists every live model: executors, health, backends, context" 0 c_discover_table

expect "client query gpt-4 returns both executors, verified, with their backends and prices" 0 \
	c_query "$VA" gpt-4 "sorted(peers(d)) == sorted(['$E1', '$E2']) and all(x['verified'] and x['addrs'] for x in d['executors'])
		and ex(d, '$E1')['backend_type'] == 'openai' and ex(d, '$E1')['pricing']['input_token_price_wei'] == '30000'
		and ex(d, '$E2')['backend_type'] == 'vllm' and ex(d, '$E2')['pricing']['output_token_price_wei'] == '40000'
		and ex(d, '$E2')['max_context_length'] == 32768"
expect "client query filters: --backend vllm and --max-input-price 25000 keep only executor 2" 0 \
	c_query "$VA" gpt-4 "peers(d) == ['$E2']" --backend vllm --max-input-price 25000
expect "client query of a model nobody serves says so and exits non-zero" 0 c_no_executor "$VA" no-such-model
expect "client list shows every executor with its status (all healthy)" 0 \
	c_models "$VA" list "all(x['status'] == 'healthy' for m in d['models'] for x in m['executors'])
		and sum(m['executor_count'] for m in d['models']) == 5"
c_other_network() {
	cli "$VA" discover --json --network lloom-e2e-other
	WHY="client discover --network lloom-e2e-other: exit $RC; $(short "$OUT") $(short "$ERR" 200)"
	[[ $RC != 0 ]] || jtrue "$OUT" "d['models'] == []"
}
expect "a client of another network (--network) is not shown this network's models" 0 c_other_network
expect "client stats counts 3 executors, 3 healthy, 4 models, 3 announcements" 0 \
	c_stats "$VA" "d['executors'] == 3 and d['healthy'] == 3 and d['models'] == 4 and d['announcements_accepted'] >= 3"

# ------------------------------------------------------------------------
group "Heartbeats and health"

HB0="$(stat_of "$VA" heartbeats_accepted)"
expect "heartbeats arrive: heartbeats_accepted grows (from $HB0)" "$WAIT" \
	c_stats "$VA" "d['heartbeats_accepted'] >= $HB0 + 6"
expect "each executor's load and capacity show up (executor 1: 0 active, 0 queued of 4; executor 2: of 16), seen within 3 s" 0 \
	c_query "$VA" gpt-4 "ex(d, '$E1')['capacity'] == 4 and ex(d, '$E2')['capacity'] == 16
		and all(x['active_requests'] == 0 and x['queued_requests'] == 0 and age(x['last_seen']) <= 3 for x in d['executors'])"

E3_PID=${PID[e3]}
disown "$E3_PID" # else bash reports "Killed" on stderr
kill -KILL "$E3_PID"
T_KILL=$SECONDS
unset "PID[e3]"
expect "right after the kill it is still listed healthy: health follows heartbeats, not connections" 0 \
	c_models "$VA" list "[x['status'] for x in models(d).get('phi3:mini', {}).get('executors', [])] == ['healthy']"
c_e3_stale() {
	c_models "$VA" list "[x['status'] for x in models(d).get('phi3:mini', {}).get('executors', [])] == ['stale']"
}
expect "an executor killed with SIGKILL turns stale (client list) after --stale-after ${STALE}s" "$((STALE + WAIT))" c_e3_stale
if [[ $OK == true ]]; then
	printf '      (stale %ss after the kill)\n' "$((SECONDS - T_KILL))"
fi
expect "the validator logs 'Executor is stale…' for it" 2 c_log "$DIR/va.log" "Executor is stale: no heartbeat within the stale timeout" "executor=$E3"
expect "client discover no longer lists its model" 0 \
	c_models "$VA" discover "'phi3:mini' not in models(d) and len(models(d)) == 3"
c_e3_gone() { c_models "$VA" list "'phi3:mini' not in models(d)"; }
expect "…and is removed after --remove-after ${REMOVE}s (gone from client list)" "$((REMOVE + WAIT))" c_e3_gone
if [[ $OK == true ]]; then
	printf '      (removed %ss after the kill)\n' "$((SECONDS - T_KILL))"
fi
c_e3_removed() {
	c_log "$DIR/va.log" "Executor removed: no heartbeat within the removal timeout" "executor=$E3" &&
		c_stats "$VA" "d['executors_removed'] == 1 and d['executors'] == 2"
}
expect "the validator logs 'Executor removed…' and counts it in executors_removed" 2 c_e3_removed

# ------------------------------------------------------------------------
group "Dynamic updates (config reload)"

reloads() { logcount "$DIR/e1.log" "Config reloaded"; }
R0="$(reloads)"
write_config "$DIR/e1.toml" <<EOF
$E1_CONFIG

[[models]]
id = "qwen2.5:7b"
backend = "ollama"
max_context_length = 32768
capacity = 2
EOF
MIN=$((R0 + 1)) expect "editing the config file reloads it ('Config reloaded', reason file changed)" "$WAIT" \
	c_log "$DIR/e1.log" "Config reloaded" "reason=file changed" models=3
expect "a model added at runtime is served: client query qwen2.5:7b finds executor 1" "$WAIT" \
	c_query "$VA" qwen2.5:7b "peers(d) == ['$E1'] and d['executors'][0]['max_context_length'] == 32768"
expect "…and discoverable: client discover lists it" 0 c_models "$VA" discover "mpeers(d, 'qwen2.5:7b') == ['$E1']"

write_config "$DIR/e1.toml" <<'EOF'
[[models]]
id = "llama3.2:3b"
backend = "ollama"
max_context_length = 16384
features = ["chat", "completion"]
capacity = 4
[models.pricing]
input_token_price_wei = "1500"
output_token_price_wei = "2000"

[[models]]
id = "gpt-4"
backend = "openai"
max_context_length = 8192
features = ["chat"]
capacity = 4
[models.pricing]
input_token_price_wei = "30000"
output_token_price_wei = "60000"

[[models]]
id = "qwen2.5:7b"
backend = "ollama"
max_context_length = 32768
capacity = 2
EOF
expect "a reload changes a model: llama3.2:3b now costs 1500 wei per input token, context 16384" "$WAIT" \
	c_query "$VA" llama3.2:3b "ex(d, '$E1').get('pricing', {}).get('input_token_price_wei') == '1500' and ex(d, '$E1')['max_context_length'] == 16384"

write_config "$DIR/e1.toml" <<'EOF'
[[models]]
id = "gpt-4"
backend = "openai"
max_context_length = 8192
features = ["chat"]
capacity = 4
[models.pricing]
input_token_price_wei = "30000"
output_token_price_wei = "60000"

[[models]]
id = "qwen2.5:7b"
backend = "ollama"
max_context_length = 32768
capacity = 2
EOF
expect "a reload removes a model: nobody serves llama3.2:3b any more" "$WAIT" c_no_executor "$VA" llama3.2:3b
expect "the validator logs the announcement that dropped it" 2 \
	c_log "$DIR/va.log" "Received model announcement" "executor=$E1" kind=update dropped~llama3.2:3b

R1="$(logcount "$DIR/e1.log" "Config reloaded" reason=SIGHUP)"
kill -HUP "${PID[e1]}"
MIN=$((R1 + 1)) expect "SIGHUP reloads the config ('Config reloaded', reason SIGHUP) and the executor keeps running" "$WAIT" \
	c_log "$DIR/e1.log" "Config reloaded" reason=SIGHUP
printf '[[models]]\nid = "no spaces allowed"\n' | write_config "$DIR/e1.toml"
expect "a config file that does not load is reported ('Config not reloaded…')" "$WAIT" \
	c_log "$DIR/e1.log" "Config not reloaded; keeping the current models"
expect "…and the executor keeps serving its current models" 0 \
	c_models "$VA" discover "mpeers(d, 'qwen2.5:7b') == ['$E1'] and '$E1' in mpeers(d, 'gpt-4')"
c_e1_alive() {
	WHY="executor 1 exited; its log ends: $(tail -c 300 "$DIR/e1.log")"
	alive e1
}
expect "executor 1 is still running after SIGHUP and a bad config" 0 c_e1_alive

# ------------------------------------------------------------------------
group "Error handling"

# publish_invalid KIND CODE: `lloom debug publish-invalid` joins the topic
# as a fresh peer and publishes one invalid announcement of KIND; validator
# A must reject it with CODE and register nothing.
publish_invalid() {
	local kind=$1 code=$2 rc=0 out rejected0 logged0
	rejected0="$(stat_of "$VA" messages_rejected)"
	logged0="$(logcount "$DIR/va.log" "Rejected message" "code=$code" verdict=reject)"
	out="$(timeout "$((TEST_TIMEOUT + 5))" "$LLOOM" debug publish-invalid --validator "$VA" --kind "$kind" \
		--timeout "${TEST_TIMEOUT}s" 2>&1)" || rc=$?
	if [[ $rc != 0 || $out != *"code $code"* ]]; then
		fail "an invalid announcement ($kind) is rejected with code $code" \
			"lloom debug publish-invalid --kind $kind: exit $rc: $out"
		return 0
	fi
	MIN=$((logged0 + 1)) expect "an invalid announcement ($kind) is rejected with code $code ('Rejected message', verdict reject)" "$WAIT" \
		c_log "$DIR/va.log" "Rejected message" "code=$code" verdict=reject
	expect "…counted in messages_rejected; the registry still holds only the 2 honest executors" 0 \
		c_stats "$VA" "d['messages_rejected'] >= $rejected0 + 1 and d['executors'] == 2"
}
publish_invalid forged-signature 1001
publish_invalid bad-version 3001

c_bad_flag() {
	local rc=0 err
	err="$("$LLOOM" validator --port 70000 2>&1 >/dev/null)" || rc=$?
	WHY="lloom validator --port 70000: exit $rc, stderr: $err"
	[[ $rc == 2 && $(wc -l <<<"$err") == 1 && $err == "lloom: --port"* ]]
}
expect "a bad flag value is one clear line on stderr and exit status 2" 0 c_bad_flag
c_port_in_use() {
	local rc=0 err
	err="$(timeout 10 "$LLOOM" validator --port "$PA" --identity "$DIR/keys/other.key" 2>&1 >/dev/null)" || rc=$?
	WHY="a second validator on port $PA: exit $rc, stderr: $err"
	[[ $rc == 1 && $err == *"is the port in use?"* ]]
}
expect "a second validator on a port in use fails at once: exit 1, 'is the port in use?'" 0 c_port_in_use

# Validator restart: same identity, same port; the executors must come back.
VA_BEFORE="$VA"
stop va TERM
c_va_stopped() {
	WHY="validator A: exit status $STOP_RC"
	[[ $STOP_RC == 0 ]] && [[ $(logcount "$DIR/va.log" "Validator stopped") -ge 1 ]]
}
expect "validator A stops cleanly on SIGTERM (exit 0, 'Validator stopped')" 0 c_va_stopped
mv "$DIR/va.log" "$DIR/va.before-restart.log"
start_validator va "$PA"
expect "validator A restarts on the same port with the same identity" "$WAIT" c_validator_up va
VA="$(loopback_addr "$DIR/va.addr")"
c_same_addr() {
	WHY="before: $VA_BEFORE, after: $VA"
	[[ $VA == "$VA_BEFORE" ]]
}
expect "…its address file names the same peer id" 0 c_same_addr
expect "after the restart both executors are registered again with their models" "$WAIT" \
	c_models "$VA" list "mpeers(d, 'gpt-4') == sorted(['$E1', '$E2']) and mpeers(d, 'qwen2.5:7b') == ['$E1']
		and mpeers(d, 'mistral:7b') == ['$E2']"
expect "…which logs them as new ('Received model announcement', new=true, via gossip or pull)" 2 \
	c_log "$DIR/va.log" "Received model announcement" "executor=$E1" new=true

# An executor that starts before its validator (short host:port form).
PB="$(free_port)"
start_executor e4 "127.0.0.1:$PB" --model early-bird:1b
expect "an executor started before its validator retries ('Validator unreachable; retrying')" "$WAIT" \
	c_log "$DIR/e4.log" "Validator unreachable; retrying" "validator=127.0.0.1:$PB"
expect "…and waits to announce ('Waiting for a validator to join the topic…')" 0 \
	c_log "$DIR/e4.log" "Waiting for a validator to join the topic before announcing"
start_validator vb "$PB"
expect "validator B comes up on port $PB" "$WAIT" c_validator_up vb
VB="$(loopback_addr "$DIR/vb.addr" || echo "127.0.0.1:$PB")"
expect "the executor registers with validator B once it is up" "$((WAIT + 10))" \
	c_query "$VB" early-bird:1b "peers(d) == ['${PEER[e4]}']"
expect "…having learned its peer id on first contact (trust on first use, logged)" 0 \
	c_log "$DIR/e4.log" "Learned validator peer id on first contact (trust on first use); pin it with the full multiaddr /ip4/127.0.0.1/tcp/$PB/p2p/${PEER[vb]}" "peer=${PEER[vb]}"

# ------------------------------------------------------------------------
group "Load management"

# Load comes from the Go API; the binary reports it through the hidden
# executor flag --debug-load MODEL=ACTIVE/QUEUED.
for n in l1 l2 l3; do
	cap=4
	[[ $n == l3 ]] && cap=8
	printf '[[models]]\nid = "load-test:7b"\nbackend = "vllm"\ncapacity = %d\n' "$cap" >"$DIR/$n.toml"
done
start_executor l1 "$VA" --config "$DIR/l1.toml" --debug-load load-test:7b=3/1 # 4 of 4: overloaded
start_executor l2 "$VA" --config "$DIR/l2.toml" --debug-load load-test:7b=1/0 # 1 of 4
start_executor l3 "$VA" --config "$DIR/l3.toml" --debug-load load-test:7b=2/2 # 4 of 8
L1=${PEER[l1]} L2=${PEER[l2]} L3=${PEER[l3]}
c_load_started() {
	local n
	for n in l1 l2 l3; do
		c_alive "$n" "Executor started" || return 1
	done
}
expect "executors with --debug-load start (load set through the executor's load API)" "$WAIT" c_load_started
if [[ $OK == true ]]; then
	expect "load and capacity are reported: 2 active, 2 queued of capacity 8" "$WAIT" \
		c_query "$VA" load-test:7b "ex(d, '$L3').get('active_requests') == 2 and ex(d, '$L3').get('queued_requests') == 2
			and ex(d, '$L3').get('capacity') == 8 and len(d['executors']) == 3"
	expect "an executor at capacity (3 active + 1 queued of 4) is shown as overloaded" "$WAIT" \
		c_query "$VA" load-test:7b "ex(d, '$L1').get('status') == 'overloaded'
			and ex(d, '$L2').get('status') == 'healthy' and ex(d, '$L3').get('status') == 'healthy'"
	c_overloaded_everywhere() {
		c_stats "$VA" "d['overloaded'] == 1" &&
			c_models "$VA" discover "[x['status'] for x in models(d)['load-test:7b']['executors']].count('overloaded') == 1"
	}
	expect "…in client stats and client discover as well" 0 c_overloaded_everywhere
	expect "executors come least loaded first: 1 of 4, then 4 of 8, then 4 of 4" 0 \
		c_query "$VA" load-test:7b "peers(d) == ['$L2', '$L3', '$L1']"
else
	for what in "load and capacity are reported" "an executor at capacity is shown as overloaded" \
		"executors come least loaded first"; do
		fail "$what" "needs the executor flag --debug-load MODEL=ACTIVE/QUEUED"
	done
fi

# ------------------------------------------------------------------------
group "Inference"

# A real engine: Ollama v0.6.5 serving a tiny model the project generates
# (random weights: gibberish, but real tokens, sampling and stop strings).
T_ENGINE=$SECONDS
expect "the test engine starts (Ollama v0.6.5 with the generated model, scripts/ollama-test-engine.sh)" 0 c_engine
M="$ENGINE_MODEL"
if [[ $OK == true ]]; then
	printf '      (%s at %s, ready after %ss)\n' "$M" "$ENGINE_URL" "$((SECONDS - T_ENGINE))"
	start_executor i1 "$VA" --backend-url "$ENGINE_URL" --capacity 2
	I1=${PEER[i1]}
	expect "an executor with --backend-url and no models announces what the backend lists (capacity 2, available)" "$WAIT" \
		c_query "$VA" "$M" "peers(d) == ['$I1'] and ex(d, '$I1')['available'] and ex(d, '$I1')['capacity'] == 2"
	expect "…and logs the backend's list ('Backend's model list changed')" 0 \
		c_log "$DIR/i1.log" "Backend's model list changed" "models~$M"

	c_chat_json() {
		cli "$VA" chat "$M" "Why is the sky blue?" --json --max-tokens 8
		WHY="client chat $M --json --max-tokens 8: exit $RC; $(short "$OUT" 500) $(short "$ERR" 200)"
		[[ $RC == 0 ]] && jtrue "$OUT" "d['complete'] and d['executor'] == '$I1' and d['model_id'] == '$M'
			and d['receipt']['verified'] and d['receipt']['executor'] == '$I1'
			and d['usage']['completion_tokens'] == 8 and d['receipt']['completion_tokens'] == 8
			and d['usage']['prompt_tokens'] == d['receipt']['prompt_tokens'] > 0
			and d['finish_reason'] == 'length' and d['text'] != '' and d['receipt']['output_sha256'] == sha256(d['text'])
			and codes(d) == [0] and 0 < d['ttft_ms'] <= d['duration_ms']"
	}
	expect "client chat --json through the real engine: complete, receipt verified, usage 8 tokens (--max-tokens 8), exit 0" 0 c_chat_json

	c_chat_stream() {
		cli "$VA" chat "$M" "Why is the sky blue?" --max-tokens 5
		WHY="client chat $M --max-tokens 5: exit $RC; stdout: $(short "$OUT" 200); stderr: $(short "$ERR" 300)"
		[[ $RC == 0 && -n ${OUT// /} && $(wc -l <<<"$ERR") == 1 ]] &&
			grep -Eq "^executor $I1 · [0-9]+\+5 tokens · fee 0 wei · first token [0-9.]+m?s · [0-9.]+m?s · receipt verified$" <<<"$ERR"
	}
	expect "client chat without --json: the answer on stdout, one summary line on stderr (executor, tokens, fee, first token)" 0 c_chat_stream

	c_complete() {
		cli "$VA" complete "$M" "Once upon a time" --json --max-tokens 6
		WHY="client complete $M: exit $RC; $(short "$OUT" 400) $(short "$ERR" 200)"
		[[ $RC == 0 ]] && jtrue "$OUT" "d['complete'] and d['receipt']['verified'] and d['usage']['completion_tokens'] == 6 and d['text'] != ''"
	}
	expect "client complete (a text completion): complete, verified, 6 tokens" 0 c_complete

	c_stdin() {
		cli "$VA" chat "$M" --system "Be brief" --json --max-tokens 4 <<<"Summarise this"
		WHY="echo Summarise this | client chat $M --system 'Be brief': exit $RC; $(short "$OUT" 400) $(short "$ERR" 200)"
		[[ $RC == 0 ]] && jtrue "$OUT" "d['complete'] and d['receipt']['verified'] and d['usage']['completion_tokens'] == 4"
	}
	expect "client chat reads the prompt from standard input (with --system)" 0 c_stdin

	# chat_text ARGS…: the text of a complete 8-token answer, or "".
	chat_text() {
		cli "$VA" chat "$M" "Why is the sky blue?" --json --max-tokens 8 "$@"
		if [[ $RC == 0 ]]; then jget "$OUT" "d['text'] if d['complete'] else ''"; fi
	}
	c_seed() {
		local a b c
		a="$(chat_text --temperature 1 --seed 7)" b="$(chat_text --temperature 1 --seed 7)" c="$(chat_text --temperature 1 --seed 8)"
		WHY="seed 7: '$a'; seed 7 again: '$b'; seed 8: '$c'"
		[[ -n $a && $a == "$b" && $a != "$c" ]]
	}
	expect "--seed and --temperature reach the engine: the same seed gives the same answer, another seed another" 0 c_seed

	c_stop() {
		local full word want got finish
		full="$(chat_text --temperature 0)"
		word="$(awk '{print $4}' <<<"$full")"
		want="${full%%" $word"*}"
		cli "$VA" chat "$M" "Why is the sky blue?" --json --max-tokens 8 --temperature 0 --stop " $word"
		got="$(jget "$OUT" "d['text']")" finish="$(jget "$OUT" "d['finish_reason']")"
		WHY="answer '$full'; with --stop ' $word': exit $RC, '$got', finish $finish; want '$want', stop"
		[[ -n $word && $RC == 0 && $got == "$want" && $finish == stop ]]
	}
	expect "--stop reaches the engine: the answer ends before the stop text, finish_reason stop" 0 c_stop

	# The OpenAI-compatible gateway, spoken to with curl as users do.
	GP="$(free_port)"
	start g1 gateway --listen "127.0.0.1:$GP" --validator "$VA" --models-refresh 1s --log-format json --log-level "$LOG_LEVEL"
	GW="http://127.0.0.1:$GP/v1"
	c_gw_models() {
		OUT="$(curl --noproxy '*' -s "$GW/models")" RC=$?
		WHY="curl $GW/models: exit $RC; $(short "$OUT" 300)"
		[[ $RC == 0 ]] && jtrue "$OUT" "d['object'] == 'list' and any(m['id'] == '$M' and m['owned_by'] == 'lloom' for m in d['data'])"
	}
	expect "lloom gateway: GET /v1/models lists the engine's model (OpenAI's list shape, owned_by lloom)" "$WAIT" c_gw_models

	c_gw_stream() {
		local hdr="$DIR/g1.headers"
		OUT="$(curl --noproxy '*' -sN -D "$hdr" "$GW/chat/completions" -H 'content-type: application/json' \
			-d '{"model":"'"$M"'","stream":true,"max_tokens":6,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}')" RC=$?
		WHY="curl -N chat/completions stream: exit $RC; headers $(short "$(tr -d '\r' <"$hdr" | tr '\n' ' ')" 300); body $(short "$OUT" 400)"
		[[ $RC == 0 ]] && grep -qi "^x-lloom-executor: $I1" "$hdr" && grep -qi '^content-type: text/event-stream' "$hdr" &&
			[[ $(grep -c '^data: ' <<<"$OUT") -ge 4 && $(grep '^data: ' <<<"$OUT" | tail -1) == 'data: [DONE]' ]] &&
			jtrue "$(grep '^data: {' <<<"$OUT" | tail -1 | cut -c7-)" "d['usage']['completion_tokens'] == 6 and d['lloom']['executor'] == '$I1' and d['lloom']['receipt'] != ''"
	}
	expect "curl -N through the gateway: SSE chunks, usage and the receipt in the last chunk, data: [DONE], X-Lloom-Executor" 0 c_gw_stream

	c_gw_unknown() {
		OUT="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "$GW/chat/completions" -H 'content-type: application/json' \
			-d '{"model":"no-such-model:1b","messages":[{"role":"user","content":"hi"}]}')" RC=$?
		WHY="unknown model: exit $RC, HTTP $OUT"
		[[ $RC == 0 && $OUT == 404 ]]
	}
	expect "the gateway answers 404 for a model nobody serves" 0 c_gw_unknown
	stop g1 TERM
else
	for what in "an executor with --backend-url announces what the backend lists" "client chat --json through the real engine" \
		"client chat without --json" "client complete" "client chat from standard input" "--seed and --temperature reach the engine" \
		"--stop reaches the engine" "lloom gateway: GET /v1/models" "curl -N through the gateway" "the gateway answers 404"; do
		fail "$what" "needs the test engine"
	done
fi

c_announce_only() {
	cli "$VA" chat qwen2.5:7b "hello" --json
	WHY="client chat qwen2.5:7b (announce-only executor 1): exit $RC; $(short "$OUT" 400) stderr: $(short "$ERR" 300)"
	[[ $RC != 0 && $(wc -l <<<"$ERR") == 1 && $ERR == "lloom: "*"(code 6003)"* ]] &&
		jtrue "$OUT" "not d['complete'] and d['error_code'] == 6003 and codes(d) == [6003]
			and d['attempts'][0]['executor'] == '$E1' and d['receipt'] is None"
}
expect "an announce-only executor's model answers 6003: attempts say so, one line naming the code, exit non-zero" 0 c_announce_only

c_nobody() {
	cli "$VA" chat no-such-model:1b "hello"
	WHY="client chat no-such-model:1b: exit $RC; stdout $(short "$OUT" 100); stderr: $(short "$ERR" 300)"
	[[ $RC != 0 && -z $OUT && $(wc -l <<<"$ERR") == 1 && $ERR == *'no executor serves the model "no-such-model:1b"'* ]]
}
expect "a model nobody serves: exit non-zero, one line 'no executor serves the model …'" 0 c_nobody

c_bad_sampling() {
	local args rc err
	for args in "--temperature 3" "--top-p 0" "--max-tokens 0"; do
		rc=0
		# shellcheck disable=SC2086 # the flag and its value, split
		err="$("$LLOOM" client chat some-model hello $args --validator "$VA" 2>&1 >/dev/null)" || rc=$?
		WHY="lloom client chat some-model hello $args: exit $rc, stderr: $err"
		[[ $rc == 2 && $(wc -l <<<"$err") == 1 && $err == "lloom: $args:"* ]] || return 1
	done
}
expect "bad sampling values (--temperature 3, --top-p 0, --max-tokens 0) are usage errors: exit 2, one line naming the flag" 0 c_bad_sampling

# ------------------------------------------------------------------------
group "Shutdown"

stop e2 TERM
c_e2_stopped() {
	WHY="executor 2: exit status $STOP_RC; log ends: $(tail -c 300 "$DIR/e2.log")"
	[[ $STOP_RC == 0 ]] && [[ $(logcount "$DIR/e2.log" "Published REMOVAL") -ge 1 ]]
}
T_STOP=$SECONDS
expect "an executor stopped with SIGTERM publishes REMOVAL and exits 0" 0 c_e2_stopped
expect "the validator logs 'Executor withdrew its announcement (REMOVAL)'" "$WAIT" \
	c_log "$DIR/va.log" "Executor withdrew its announcement (REMOVAL)" "executor=$E2"
expect "its models are gone at once, well before --stale-after: nobody serves mistral:7b" "$((STALE - 1))" \
	c_no_executor "$VA" mistral:7b
if [[ $OK == true ]]; then
	printf '      (gone %ss after the signal)\n' "$((SECONDS - T_STOP))"
fi

# ------------------------------------------------------------------------
printf '\n'
if [[ $CLEANUP_ON_EXIT == true ]]; then
	bad=""
	for name in $(by_role); do
		stop "$name" TERM
		if [[ $STOP_RC != 0 ]]; then
			bad+=" $name (status $STOP_RC)"
			if [[ $STOP_RC == running ]]; then kill -KILL "${PID[$name]}" 2>/dev/null || true; fi
		fi
	done
	engine_stop
	if [[ -z $bad ]]; then
		pass "every node still running exits 0 on SIGTERM"
	else
		fail "every node still running exits 0 on SIGTERM" "not:$bad"
	fi
	if ((FAILED == 0)); then
		rm -rf "$DIR"
	else
		printf 'Logs kept in %s\n' "$DIR"
	fi
else
	printf 'Still running (CLEANUP_ON_EXIT=false), logs in %s:\n' "$DIR"
	execs="" vals=""
	for name in $(by_role); do
		printf '  %-3s pid %-7s log %s\n' "$name" "${PID[$name]}" "$DIR/$name.log"
		if [[ $name == v* ]]; then vals+=" ${PID[$name]}"; else execs+=" ${PID[$name]}"; fi
	done
	printf 'Validator A: %s\nValidator B: %s\n' "$VA" "$VB"
	if [[ $ENGINE_STARTED == true ]]; then
		printf 'Test engine: %s; stop it with: LLOOM_OLLAMA_DIR=%s scripts/ollama-test-engine.sh stop\n' "$ENGINE_URL" "$DIR/ollama"
	fi
	printf 'Stop them with: kill%s; then, once they have exited: kill%s\n' "$execs" "$vals"
fi
printf 'Finished in %ss\n' "$((SECONDS - START))"
SUMMARY_DONE=true
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
((FAILED == 0))
