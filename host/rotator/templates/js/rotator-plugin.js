// Helpers for rotator plugins in JavaScript (rotator:plugin@{{wit_version}}).
//
// The same shape as the Rust SDK (`rotator-plugin-sdk`) and the Python helper
// (`rotator_plugin.py`), so a rotator reads the same in each:
//
// - `settings(ctx)`, `fields(data)`, `currentFields(ctx)`, `toJson(fields)`:
//   JSON in and out, with typed errors.
// - `invalidConfig(msg)`, `permanent(msg)`, `transient(msg)`: the three
//   `rotate-error` cases, ready to `throw`. Any other exception traps the
//   component (the host records a crash), so throw one of these instead.
// - `handle(secret, field)`: a field's handle, for handle mode.
// - `debug`, `info`, `warn`, `error`: log through the host, which tags the
//   line with job, plugin and rotation and redacts known secret values.
// - `vault`, `sql`, `http`: the host's interfaces as jco binds them;
//   `call(fn, ...args)` calls one and turns its error into a `rotate-error`
//   by whether a retry can help.
//
// WIT values in JS: records are objects with camelCase keys, `option<T>` is
// the value or `undefined`, `u64` a BigInt, variants `{ tag, val }`; an
// import returning `result<T, E>` returns T or throws an error whose
// `payload` is E.

import { write } from "rotator:plugin/log@{{wit_version}}";
import * as vault from "rotator:plugin/vault@{{wit_version}}";
import * as sql from "rotator:plugin/sql@{{wit_version}}";
import * as http from "rotator:plugin/http@{{wit_version}}";

export { vault, sql, http };

/** The job's settings are wrong: the operator must fix them; no retry. */
export const invalidConfig = (message) => ({ tag: "invalid-config", val: message });
/** A failure a retry would repeat. */
export const permanent = (message) => ({ tag: "permanent", val: message });
/** A failure worth a retry (a service down, a timeout). */
export const transient = (message) => ({ tag: "transient", val: message });

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** The job's settings as an object; anything else is `invalid-config`. */
export function settings(ctx) {
  let value;
  try {
    value = JSON.parse(ctx.settings);
  } catch (e) {
    throw invalidConfig(`settings are not JSON: ${e.message}`);
  }
  if (!isObject(value)) throw invalidConfig("settings must be a table");
  return value;
}

/** A secret's fields; anything but a JSON object is `permanent`. */
export function fields(data) {
  let value;
  try {
    value = JSON.parse(data);
  } catch {
    throw permanent("secret data is not JSON");
  }
  if (!isObject(value)) throw permanent("secret data is not a JSON object");
  return value;
}

/** The current secret's fields, or `{}` on the first rotation. */
export const currentFields = (ctx) => (ctx.current === undefined ? {} : fields(ctx.current.data));

/** Secret fields back to the JSON the host expects. */
export const toJson = (value) => JSON.stringify(value);

/** The handle of `field`, if the secret has that field. */
export const handle = (secret, field) => secret.handles.find((h) => h.field === field)?.handle;

/** Log fine detail. */
export const debug = (message) => write("debug", message);
/** Log normal progress. */
export const info = (message) => write("info", message);
/** Log something odd that did not stop the step. */
export const warn = (message) => write("warn", message);
/** Log a failure. */
export const error = (message) => write("error", message);

// Host errors a retry may get past (vault, sql and http tags); every other
// one is permanent.
const RETRYABLE = new Set(["unavailable", "cas-mismatch", "dns", "connect", "timeout"]);

/** The `rotate-error` for a vault, sql or http error value. */
export function rotateError(e) {
  if (e?.tag === "status") {
    const { code, errors } = e.val;
    const message = `vault answered ${code}: ${errors.join("; ")}`;
    return code === 429 || code >= 500 ? transient(message) : permanent(message);
  }
  if (e?.tag === "unknown-connection") return invalidConfig(`sql: ${e.val}`);
  const message = `${e?.tag}: ${e?.val}`;
  return RETRYABLE.has(e?.tag) ? transient(message) : permanent(message);
}

/** `fn(...args)` for a host function (`vault.kvRead`, `sql.execute`,
 *  `http.send`, …); its error is thrown as a rotate-error. */
export function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    throw rotateError(e?.payload ?? e);
  }
}
