// Route one call with the callroute component transpiled by jco, the way a Node.js call
// platform would: import `router` and call `route`. The scheme comes from CALLROUTE_SCHEME
// (config.js); the webhook goes out through @bytecodealliance/preview2-shim's wasi:http.
//
//   node route.js CALLER CALLEE      (after `npm run transpile -- COMPONENT.wasm`)
import { router } from "./out/callroute.js";

const [caller, callee] = process.argv.slice(2);
try {
  const routing = router.route({ callId: "node-1", caller, callee, vars: [] });
  console.log(JSON.stringify(routing));
} catch (error) {
  // A route-error: { tag: "http-status" | "timeout" | …, val: … }.
  console.error("failed:", JSON.stringify(error.payload ?? String(error)));
  process.exit(1);
}
