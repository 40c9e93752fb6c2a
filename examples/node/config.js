// wasi:config/store for the callroute component under Node.js (jco maps the import here):
// the scheme from the CALLROUTE_SCHEME environment variable, a JSON object of flat keys
// (`{"url": "…", "params.callee": "{callee}"}`), read once.
const scheme = JSON.parse(process.env.CALLROUTE_SCHEME ?? "{}");

/** One key of the scheme, or undefined. */
export function get(key) {
  return scheme[key];
}

/** Every key of the scheme, as [key, value] pairs. */
export function getAll() {
  return Object.entries(scheme);
}
