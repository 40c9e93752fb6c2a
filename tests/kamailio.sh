#!/usr/bin/env bash
# End to end over real SIP: SIPp (the caller) -> Kamailio (a redirect server) -> `callroute serve`
# -> a CRM, all on 127.0.0.1 with free ports. Asserts that SIPp gets 302 with the CRM's
# destination in the Contact (a phone and a SIP login), and 480 once the CRM is down.
# Installs Kamailio and SIPp from Debian when missing; stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
example="$root/examples/kamailio"

modules_present() {
    compgen -G "/usr/lib/*/kamailio/modules/http_client.so" >/dev/null \
        || compgen -G "/usr/lib*/kamailio/modules/http_client.so" >/dev/null
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
    rm -rf "$work"
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
[scheme.params]
call_id = "{call_id}"
caller = "{caller}"
callee = "{callee}"
TOML
CALLROUTE_ACME_TOKEN="$token" \
    "$callroute" serve --schemes "$work/schemes.toml" --listen "127.0.0.1:$serve_port" \
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

kill "$crm_pid"; wait "$crm_pid" 2>/dev/null || true
call invite-unavailable 380441234567 >/dev/null
echo "ok: INVITE with the CRM down -> 480"
grep -q 'outcome="failed"' "$work/serve.log" || grep -q 'outcome=failed' "$work/serve.log" \
    || { cat "$work/serve.log" >&2; fail "callroute did not log the failed call"; }
echo "kamailio end-to-end: all passed"
