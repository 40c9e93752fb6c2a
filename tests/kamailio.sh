#!/usr/bin/env bash
# End to end over real SIP: SIPp (the caller) -> Kamailio (a redirect server) -> `callroute serve`
# -> a CRM, all on 127.0.0.1 with free ports. Asserts that SIPp gets 302 with the CRM's
# destination in the Contact (a phone and a SIP login), and 480 once the CRM is down; that the
# forking proxy rings ring groups serially and in parallel; and that it reports each call's
# outcome (answered, busy, no answer, cancelled) to callroute, which delivers it to the CRM.
# Installs Kamailio and SIPp from Debian when missing; stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
example="$root/examples/kamailio"

modules_present() {
    local module
    for module in http_client rtjson json; do
        compgen -G "/usr/lib/*/kamailio/modules/$module.so" >/dev/null \
            || compgen -G "/usr/lib*/kamailio/modules/$module.so" >/dev/null || return 1
    done
}
fail() { echo "FAIL: $*" >&2; exit 1; }
if ! command -v kamailio >/dev/null || ! command -v sipp >/dev/null || ! modules_present \
    || ! command -v ss >/dev/null || ! command -v python3 >/dev/null; then
    echo "installing kamailio, sipp, iproute2 and python3 (Debian packages)"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        kamailio kamailio-utils-modules kamailio-json-modules sip-tester iproute2 python3 >/dev/null
fi

# The binary under test: $CALLROUTE, or this checkout's debug build (brought up to date; a
# workspace-wide build has the same features as `cargo test --workspace`, so it reuses its work).
if [ -z "${CALLROUTE:-}" ]; then
    (cd "$root" && cargo build --quiet --workspace --bins)
    CALLROUTE="$root/target/debug/callroute"
fi
callroute=$CALLROUTE

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() { # tcp|udp
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}
wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    tail -n 30 "$work"/*.log >&2 || true; fail "$what did not come up"
}
http_ok() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1"; }
tcp_open() { python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1"; }
udp_bound() { ss -Hlun "sport = :$1" | grep -q .; }

crm_port=$(free_port tcp); serve_port=$(free_port tcp); sip_port=$(free_port udp); sipp_port=$(free_port udp)
# The forking proxies (serial, parallel) and the two SIP phones they ring.
proxy_port=$(free_port udp); pproxy_port=$(free_port udp); uas_a=$(free_port udp); uas_b=$(free_port udp)

# The CRM records every request it gets (routing webhooks and outcome deliveries), one JSON line
# each, with the Idempotency-Key (the routing decision's id).
crm_record="$work/crm-requests.jsonl"
CRM_UAS_A="127.0.0.1:$uas_a" CRM_UAS_B="127.0.0.1:$uas_b" CRM_RECORD="$crm_record" \
    python3 "$example/crm.py" "$crm_port" 2>"$work/crm.log" &
crm_pid=$!; pids+=("$crm_pid")

# The token Kamailio sends; without it, callroute serve routes nothing.
token="kamailio-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
cat >"$work/schemes.toml" <<TOML
[[scheme]]
name = "acme"
api_tokens = ["\${env:CALLROUTE_ACME_TOKEN}"]
url = "http://127.0.0.1:$crm_port/api/route"
submission = "json"
import = "json"
destination_field = "number_01"
response_timeout_secs = 2
outcome_url = "http://127.0.0.1:$crm_port/outcome"
outcome_submission = "json"
[scheme.params]
call_id = "{call_id}"
caller = "{caller}"
callee = "{callee}"
[scheme.outcome_params]
call_id = "{call_id}"
status = "{status}"
answered_by = "{answered_by}"
talk_secs = "{talk_secs}"
ring_secs = "{ring_secs}"
hangup_cause = "{hangup_cause}"
decision = "{decision}"

# The same tenant's ring groups rung all at once (ring_strategy is per scheme).
[[scheme]]
name = "acme-parallel"
api_tokens = ["\${env:CALLROUTE_ACME_TOKEN}"]
url = "http://127.0.0.1:$crm_port/api/route"
submission = "json"
import = "json"
destination_field = "number_01"
response_timeout_secs = 2
ring_strategy = "parallel"
ring_timeout_secs = 20
outcome_url = "http://127.0.0.1:$crm_port/outcome"
outcome_submission = "json"
[scheme.params]
call_id = "{call_id}"
caller = "{caller}"
callee = "{callee}"
[scheme.outcome_params]
call_id = "{call_id}"
status = "{status}"
answered_by = "{answered_by}"
talk_secs = "{talk_secs}"
ring_secs = "{ring_secs}"
hangup_cause = "{hangup_cause}"
decision = "{decision}"
TOML
CALLROUTE_ACME_TOKEN="$token" \
    "$callroute" serve --schemes "$work/schemes.toml" --listen "127.0.0.1:$serve_port" \
        --outbox "$work/outbox" \
    --allow-private-network >"$work/serve.log" 2>&1 &
pids+=($!)

CALLROUTE_URL="http://127.0.0.1:$serve_port/v1/route/acme" CALLROUTE_TOKEN="$token" \
    kamailio -f "$example/kamailio.cfg" -l "udp:127.0.0.1:$sip_port" -DD -E \
    -Y "$work" -w "$work" >"$work/kamailio.log" 2>&1 &
pids+=($!)

wait_for "the CRM" tcp_open "$crm_port"
wait_for "callroute serve" http_ok "http://127.0.0.1:$serve_port/healthz"
wait_for "kamailio" udp_bound "$sip_port"

status_without_token=$(python3 -c 'import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=5); print(200)
except urllib.error.HTTPError as e: print(e.code)' "http://127.0.0.1:$serve_port/v1/route/acme?call_id=x&caller=1&callee=2")
[ "$status_without_token" = 401 ] || fail "callroute serve answered $status_without_token without a token"
echo "ok: no token -> 401"

call() { # scenario, callee -> prints the SIPp log
    local log="$work/sipp-$2-$1.log"
    sipp -sf "$example/sipp/$1.xml" -s "$2" "127.0.0.1:$sip_port" -i 127.0.0.1 -p "$sipp_port" \
        -m 1 -timeout 15s -timeout_error -nostdin -trace_logs -log_file "$log" \
        >"$work/sipp-$2-$1.out" 2>&1 </dev/null \
        || { tail -n 20 "$work/sipp-$2-$1.out" "$work/kamailio.log" "$work/serve.log" "$work/crm.log" >&2; fail "SIPp $1 to $2"; }
    cat "$log"
}
expect_contact() { # callee, contact
    local got
    got=$(call invite-redirect "$1" | sed -n 's/.*contact=\([^ ]*\).*/\1/p' | head -n 1)
    if [ "$got" != "$2" ]; then
        tail -n 20 "$work/kamailio.log" >&2; fail "INVITE to $1: Contact is '$got', expected '$2'"
    fi
    echo "ok: INVITE to $1 -> 302, Contact <$got>"
}

expect_contact 380441234567 "sip:380123456789@127.0.0.1"
expect_contact support "sip:manager_7@127.0.0.1"

# ---- The forking proxy (examples/kamailio/kamailio-proxy.cfg): ring groups through rtjson ----
# Numbers and logins are dialled at phone B (the outcome case "answered" rings the login manager_7).
start_proxy() { # scheme, udp port
    mkdir -p "$work/$1"
    CALLROUTE_URL="http://127.0.0.1:$serve_port/v1/route/$1" CALLROUTE_TOKEN="$token" \
        CALLROUTE_SIP_DOMAIN="127.0.0.1:$uas_b" kamailio -f "$example/kamailio-proxy.cfg" -l "udp:127.0.0.1:$2" -DD -E \
        -Y "$work/$1" -w "$work/$1" >"$work/kamailio-$1.log" 2>&1 &
    pids+=($!)
    wait_for "kamailio proxy ($1)" udp_bound "$2"
}
start_proxy acme "$proxy_port"
start_proxy acme-parallel "$pproxy_port"

# What serve answers Kamailio (exact document less its decision, which is new for every call: 32
# lower-case hex digits, the same in the x-callroute-decision header; also the phone/login -> URI
# rule).
rtjson() { # scheme, callee -> the document, keys sorted
    python3 - "http://127.0.0.1:$serve_port/v1/route/$1?call_id=rt-$2&caller=%2B380501112233&callee=$2" "$token" <<'PY'
import json, re, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={
    "Accept": "application/vnd.kamailio.rtjson+json", "X-Sip-Domain": "pbx.example.com",
    "Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=5) as r:
    assert r.headers.get_content_type() == "application/vnd.kamailio.rtjson+json", r.headers
    doc = json.load(r)
    decision = doc.pop("decision", None)
    assert isinstance(decision, str) and re.fullmatch("[0-9a-f]{32}", decision), doc
    assert r.headers.get("x-callroute-decision") == decision, (r.headers, decision)
    print(json.dumps(doc, sort_keys=True, separators=(",", ":")))
PY
}
expect_rtjson() { # scheme, callee, expected (keys sorted, compact)
    local got; got=$(rtjson "$1" "$2")
    [ "$got" = "$3" ] || fail "rtjson for $2: got $got, expected $3"
    echo "ok: rtjson for $2"
}
expect_rtjson acme 380441234567 '{"fr_inv_timer":30000,"fr_timer":5000,"routes":[{"fr_inv_timer":30000,"fr_timer":5000,"uri":"sip:380123456789@pbx.example.com"}],"routing":"serial","version":"1.0"}'
expect_rtjson acme support '{"fr_inv_timer":30000,"fr_timer":5000,"routes":[{"fr_inv_timer":30000,"fr_timer":5000,"uri":"sip:manager_7@pbx.example.com"}],"routing":"serial","version":"1.0"}'
expect_rtjson acme serial-noanswer "{\"fr_inv_timer\":10000,\"fr_timer\":5000,\"routes\":[{\"fr_inv_timer\":2000,\"fr_timer\":2000,\"uri\":\"sip:ring@127.0.0.1:$uas_a\"},{\"fr_inv_timer\":10000,\"fr_timer\":5000,\"uri\":\"sip:answer@127.0.0.1:$uas_b\"}],\"routing\":\"serial\",\"version\":\"1.0\"}"
expect_rtjson acme-parallel parallel "{\"fr_inv_timer\":20000,\"fr_timer\":5000,\"routes\":[{\"fr_inv_timer\":20000,\"fr_timer\":5000,\"uri\":\"sip:ring@127.0.0.1:$uas_a\"},{\"fr_inv_timer\":20000,\"fr_timer\":5000,\"uri\":\"sip:answer@127.0.0.1:$uas_b\"}],\"routing\":\"parallel\",\"version\":\"1.0\"}"

callee_start() { # case, a|b, scenario, port -> the SIPp callee's pid in $callee_pid
    sipp -sf "$example/sipp/$3.xml" -i 127.0.0.1 -p "$4" -m 1 -timeout 30s -timeout_error \
        -nostdin -trace_logs -log_file "$work/$1-$2.log" -trace_msg -message_file "$work/$1-$2.msg" \
        >"$work/$1-$2.out" 2>&1 </dev/null &
    callee_pid=$!; pids+=("$callee_pid")
    wait_for "SIPp callee $2 ($1)" udp_bound "$4"
}
callee_done() { # case, a|b, pid: the callee's scenario ran to its end
    wait "$3" || { tail -n 30 "$work/$1-$2.out" "$work/$1-$2.msg" "$work"/kamailio-acme*.log >&2; fail "$1: callee $2 did not complete its scenario"; }
}
ring() { # case, proxy port, callee[, call length ms] -> the caller's SIPp log
    sipp -sf "$example/sipp/invite-answered.xml" -s "$3" "127.0.0.1:$2" -i 127.0.0.1 -p "$sipp_port" \
        -d "${4:-200}" -m 1 -timeout 30s -timeout_error -nostdin -trace_logs -log_file "$work/$1-uac.log" \
        -trace_msg -message_file "$work/$1-uac.msg" >"$work/$1-uac.out" 2>&1 </dev/null \
        || { tail -n 30 "$work/$1-uac.out" "$work"/kamailio-acme*.log "$work/serve.log" >&2; fail "$1: the call was not answered"; }
}
stamp() { # SIPp log, key -> epoch seconds (the log holds "key=SEC USEC", maybe as %lf)
    python3 - "$1" "$2" <<'PY'
import re, sys
m = re.search(re.escape(sys.argv[2]) + r"=(\d+)(?:\.\d*)? (\d+)", open(sys.argv[1]).read())
sys.exit("no %s in %s" % (sys.argv[2], sys.argv[1])) if not m else print(int(m[1]) + int(m[2]) / 1e6)
PY
}
gap() { # what, t1, t2, min, max: min <= t2 - t1 <= max
    python3 -c 'import sys; t1, t2, lo, hi = map(float, sys.argv[2:]); d = t2 - t1
sys.exit(0 if lo <= d <= hi else "%s: %.3f s, expected %s..%s" % (sys.argv[1], d, lo, hi))' "$@" \
        || fail "$1"
}
expect_answered_by_b() { # case
    local contact; contact=$(sed -n 's/.*contact=\([^ ]*\).*/\1/p' "$work/$1-uac.log" | head -n 1)
    [ "$contact" = "sip:answer@127.0.0.1:$uas_b" ] || fail "$1: answered by '$contact', expected B"
}

# Serial, first busy: A gets the INVITE and answers 486, only then B gets it and answers 200.
callee_start serial-busy a uas-busy "$uas_a"; a=$callee_pid
callee_start serial-busy b uas-answer "$uas_b"; b=$callee_pid
ring serial-busy "$proxy_port" serial-busy
callee_done serial-busy a "$a"; callee_done serial-busy b "$b"
expect_answered_by_b serial-busy
gap "serial-busy: A's 486 -> B's INVITE" "$(stamp "$work/serial-busy-a.log" busy)" \
    "$(stamp "$work/serial-busy-b.log" invite)" 0 1.5
echo "ok: serial, A busy (486) -> B rang after it and answered"

# Serial, first does not answer: A rings 2 s (its fr_inv_timer), is cancelled, B rings and answers.
callee_start serial-noanswer a uas-ring "$uas_a"; a=$callee_pid
callee_start serial-noanswer b uas-answer "$uas_b"; b=$callee_pid
ring serial-noanswer "$proxy_port" serial-noanswer
callee_done serial-noanswer a "$a"; callee_done serial-noanswer b "$b"
expect_answered_by_b serial-noanswer
a_in=$(stamp "$work/serial-noanswer-a.log" invite)
gap "serial-noanswer: A's INVITE -> B's INVITE (A's ring time 2 s)" "$a_in" \
    "$(stamp "$work/serial-noanswer-b.log" invite)" 1.8 3.5
gap "serial-noanswer: A's INVITE -> A's CANCEL" "$a_in" "$(stamp "$work/serial-noanswer-a.log" cancel)" 1.8 3.5
echo "ok: serial, A unanswered for its ring time -> cancelled, B rang and answered"

# Parallel: both get the INVITE at once; B answers first (0.5 s), A (ring time 20 s) is cancelled.
callee_start parallel a uas-ring "$uas_a"; a=$callee_pid
callee_start parallel b uas-answer "$uas_b"; b=$callee_pid
ring parallel "$pproxy_port" parallel
callee_done parallel a "$a"; callee_done parallel b "$b"
expect_answered_by_b parallel
gap "parallel: A's INVITE -> B's INVITE" "$(stamp "$work/parallel-a.log" invite)" \
    "$(stamp "$work/parallel-b.log" invite)" -0.5 0.5
gap "parallel: B's 200 -> A's CANCEL" "$(stamp "$work/parallel-b.log" answered)" \
    "$(stamp "$work/parallel-a.log" cancel)" 0 1
gap "parallel: INVITE -> answer at the caller" "$(stamp "$work/parallel-uac.log" invite_sent)" \
    "$(stamp "$work/parallel-uac.log" answered)" 0 5
echo "ok: parallel, both rang, B answered first, A was cancelled"

# ---- Outcome reports: Kamailio -> POST /v1/outcome/<scheme> -> callroute -> the CRM's outcome_url ----
unanswered() { # case, scenario (invite-unanswered | invite-cancel), callee -> the caller's final reply
    sipp -sf "$example/sipp/$2.xml" -s "$3" "127.0.0.1:$proxy_port" -i 127.0.0.1 -p "$sipp_port" \
        -m 1 -timeout 30s -timeout_error -nostdin -trace_logs -log_file "$work/$1-uac.log" \
        -trace_msg -message_file "$work/$1-uac.msg" >"$work/$1-uac.out" 2>&1 </dev/null \
        || { tail -n 30 "$work/$1-uac.out" "$work/$1-uac.msg" "$work"/kamailio-acme*.log >&2; fail "$1: the caller's scenario $2 failed"; }
}
# The CRM got the outcome of the call to <callee> (polls up to 10 s): its status and answered_by,
# its decision is the one its routing webhook carried (Idempotency-Key), and the durations.
expect_outcome() { # case, callee, status, answered_by, hangup_cause, ring_secs min max[, talk_secs]
    python3 - "$crm_record" "$@" <<'PY' || { tail -n 40 "$work/serve.log" "$work"/kamailio-acme*.log >&2; fail "$2: outcome"; }
import json, sys, time
record, case, callee, status, answered_by, cause, ring_lo, ring_hi = sys.argv[1:9]
talk = int(sys.argv[9]) if len(sys.argv) > 9 else None
deadline = time.time() + 10
while True:
    lines = [json.loads(l) for l in open(record)]
    # The call's routing webhook (retries of it carry the same call id and key).
    calls = {(l["body"].get("call_id"), l["idempotency_key"]) for l in lines
             if not l["path"].startswith("/outcome") and l["body"].get("callee") == callee
             and not l["body"].get("call_id", "").startswith("rt-")}
    if len(calls) != 1:
        sys.exit("%s: routing webhooks for %s: %s (want one call)" % (case, callee, sorted(calls)))
    (call_id, decision), = calls
    got = [l["body"] for l in lines if l["path"].startswith("/outcome") and l["body"].get("call_id") == call_id]
    if got or time.time() > deadline:
        break
    time.sleep(0.1)
if len(got) != 1:
    sys.exit("%s: %d outcome reports for call %s (want 1)" % (case, len(got), call_id))
o = got[0]
problems = []
for key, want in (("status", status), ("answered_by", answered_by), ("hangup_cause", cause),
                  ("decision", decision)):
    if str(o.get(key, "")) != want:
        problems.append("%s %r, expected %r" % (key, o.get(key), want))
if not decision or len(decision) != 32:
    problems.append("the routing webhook's Idempotency-Key is %r" % decision)
if not int(ring_lo) <= int(o.get("ring_secs", -1)) <= int(ring_hi):
    problems.append("ring_secs %r, expected %s..%s" % (o.get("ring_secs"), ring_lo, ring_hi))
if talk is not None and abs(int(o.get("talk_secs", -99)) - talk) > 1:
    problems.append("talk_secs %r, expected %d (within 1 s)" % (o.get("talk_secs"), talk))
if problems:
    sys.exit("%s: the CRM's outcome %s: %s" % (case, json.dumps(o), "; ".join(problems)))
print("ok: %s -> %s" % (case, json.dumps(o, sort_keys=True)))
PY
}

# The ring groups above: each answered by B ("answer"), however many rang.
expect_outcome serial-busy serial-busy answered answer BYE 0 2
expect_outcome serial-noanswer serial-noanswer answered answer BYE 2 4
expect_outcome parallel parallel answered answer BYE 0 2

# Answered: manager_7 (phone B) answers after 0.5 s, the caller hangs up after 2 s.
callee_start outcome-answered b uas-answer "$uas_b"; b=$callee_pid
ring outcome-answered "$proxy_port" outcome-answered 2000
callee_done outcome-answered b "$b"
expect_outcome answered outcome-answered answered manager_7 BYE 0 2 2

# Busy: A answers 486.
callee_start outcome-busy a uas-busy "$uas_a"; a=$callee_pid
unanswered outcome-busy invite-unanswered outcome-busy
callee_done outcome-busy a "$a"
grep -q 'final=486' "$work/outcome-busy-uac.log" || fail "outcome-busy: the caller did not get 486"
expect_outcome busy outcome-busy busy "" 486 0 1

# No answer: A rings for its 2 s ring time (fr_inv_timer 2000 from the rtjson) and is cancelled.
callee_start outcome-noanswer a uas-ring "$uas_a"; a=$callee_pid
unanswered outcome-noanswer invite-unanswered outcome-noanswer
callee_done outcome-noanswer a "$a"
grep -q 'final=408' "$work/outcome-noanswer-uac.log" || fail "outcome-noanswer: the caller did not get 408"
expect_outcome no-answer outcome-noanswer no-answer "" 408 2 3

# Cancelled: the caller gives up after ringing 1 s.
callee_start outcome-cancelled a uas-ring "$uas_a"; a=$callee_pid
unanswered outcome-cancelled invite-cancel outcome-cancelled
callee_done outcome-cancelled a "$a"
expect_outcome cancelled outcome-cancelled cancelled "" CANCEL 1 2
# Kamailio had every report accepted at the first try (202 from callroute).
if grep -E 'outcome report (failed|dropped)' "$work"/kamailio-acme*.log >&2; then
    fail "callroute did not accept an outcome report at once"
fi

kill "$crm_pid"; wait "$crm_pid" 2>/dev/null || true
call invite-unavailable 380441234567 >/dev/null
echo "ok: INVITE with the CRM down -> 480"
grep -q 'outcome="failed"' "$work/serve.log" || grep -q 'outcome=failed' "$work/serve.log" \
    || { cat "$work/serve.log" >&2; fail "callroute did not log the failed call"; }
echo "kamailio end-to-end: all passed"
