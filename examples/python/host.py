#!/usr/bin/env python3
"""Route one call with the callroute component, hosted by wasmtime's Python package.

    python3 host.py COMPONENT.wasm SCHEME.toml CALLER CALLEE

The scheme is a TOML file of one scheme's flat keys ([params] and [headers] become
params.<name> and headers.<name>, a list becomes <key>.0, <key>.1, ...), handed to the component
through wasi:config as two Python functions; unlike `callroute`, this host resolves no
`${env:...}` reference and reads no [server] or [[scheme]] table. Prints the routing as JSON. This host gives the component WASI and wasi:http as
wasmtime does, and nothing of callroute's own host: no outbound guard, no deadline of its own
(the component keeps response_timeout_secs), no memory or CPU limit, no fallback on a crash.
"""
import json
import sys
import tomllib

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record

if len(sys.argv) != 5:
    sys.exit("usage: host.py COMPONENT.wasm SCHEME.toml CALLER CALLEE")
wasm, scheme_file, caller, callee = sys.argv[1:5]
with open(scheme_file, "rb") as f:
    toml = tomllib.load(f)
scheme = {}
for key, value in toml.items():
    if isinstance(value, dict):  # [params], [headers]
        scheme.update({f"{key}.{k}": str(v) for k, v in value.items()})
    elif isinstance(value, list):  # fallback = ["reception", "101"]
        scheme.update({f"{key}.{i}": str(v) for i, v in enumerate(value)})
    else:
        scheme[key] = str(value)

engine = Engine()
linker = Linker(engine)
linker.add_wasip2()
linker.add_wasi_http()
with linker.root() as root:
    with root.add_instance("wasi:config/store@0.2.0-rc.1") as config:
        config.add_func("get", lambda store, key: scheme.get(key))
        config.add_func("get-all", lambda store: list(scheme.items()))
store = Store(engine)
store.set_wasi(WasiConfig())
store.set_wasi_http()
instance = linker.instantiate(store, Component.from_file(engine, wasm))
router = instance.get_export_index(store, "callroute:router/router@0.3.0")
route = instance.get_func(store, instance.get_export_index(store, "route", router))

call = Record()
for name, value in {"call-id": "py-1", "caller": caller, "callee": callee, "vars": []}.items():
    setattr(call, name, value)
routing = route(store, call)
if hasattr(routing, "tag"):  # result<routing, route-error>: the error, as a variant
    sys.exit(f"failed: {routing.tag}: {json.dumps(vars(routing.payload) if hasattr(routing.payload, '__dict__') else routing.payload)}")
print(json.dumps({
    "destinations": [{"kind": d.target.tag, "target": d.target.payload,
                      "ring_timeout_secs": getattr(d, "ring-timeout-secs")}
                     for d in routing.destinations],
    "strategy": routing.strategy,
}))
