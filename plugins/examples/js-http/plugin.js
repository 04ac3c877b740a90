// js-http: rotates an API key through a REST service, in handle mode.
//
// An example of an HTTP rotator written in JavaScript and built with
// componentize-js. The service and its REST shape are made up (README.md in
// this folder describes them); the point is the pattern: the plugin never
// holds a key. It puts the current key's *handle* into a request, and the
// host fills in the value as the request leaves; the new key is captured by
// the host from the service's answer straight into the new secret, and the
// plugin only ever gets a handle for it. The same plugin as python-http.
//
// The secret has two fields: `api_key` (secret, only ever a handle here) and
// `key_id` (not secret, shown in clear through `visibleFields`).
//
//   create:   GET <url>/keys and revoke keys an interrupted earlier try
//             minted; then POST <url>/keys, bearer = current key, capture /api_key
//   set:      nothing: the service made the key live when it minted it
//   test:     GET <url>/whoami, bearer = pending key (200 passes, 401 fails)
//   finish:   DELETE <url>/keys/<old key_id>, bearer = pending key
//   rollback: DELETE <url>/keys/<pending key_id>, bearer = current key
//
// WIT values in JS (see js-kv/plugin.js): records are objects with camelCase
// keys, variants `{ tag, val }`, `list<u8>` a Uint8Array. An import that
// returns `result<T, E>` returns T or throws an error whose `payload` is E.

import { write as log } from "rotator:plugin/log@0.2.0";
import { send as httpSend } from "rotator:plugin/http@0.2.0";

const NAME = "js-http";
const VERSION = "0.1.0";
// The secret's fields: the key itself (a handle only) and its id (in clear).
const KEY = "api_key";
const KEY_ID = "key_id";
// A key id goes into a URL path, and it comes from the service's answer:
// only plain ids are accepted, so an odd answer cannot steer a request
// elsewhere (`../admin`, `x?y`).
const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const URL_PATTERN = "^https?://[^/?#]+/?$";
// Network trouble worth a retry; every other http-error is permanent.
const RETRYABLE = new Set(["dns", "connect", "timeout"]);

const SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  title: `${NAME} settings`,
  type: "object",
  additionalProperties: false,
  required: ["url"],
  properties: {
    url: {
      type: "string",
      pattern: URL_PATTERN,
      description: "The key service's origin, e.g. https://keys.example.com; the job must grant it.",
    },
  },
};

const invalidConfig = (message) => ({ tag: "invalid-config", val: message });
const transient = (message) => ({ tag: "transient", val: message });
const permanent = (message) => ({ tag: "permanent", val: message });

/** `settings.url` without a trailing slash. The host validates settings
 *  against SCHEMA first; checking here too keeps a mismatch from trapping. */
function settingsUrl(ctx) {
  let raw;
  try {
    raw = JSON.parse(ctx.settings);
  } catch (e) {
    throw invalidConfig(`settings are not JSON: ${e.message}`);
  }
  const url = raw !== null && typeof raw === "object" ? raw.url : undefined;
  if (typeof url !== "string" || !new RegExp(URL_PATTERN).test(url)) {
    throw invalidConfig("settings.url must be an http(s) origin such as https://keys.example.com");
  }
  return url.replace(/\/$/, "");
}

/** The handle of the secret's `api_key`. */
function handle(secret, which) {
  const found = secret.handles.find((h) => h.field === KEY);
  if (found === undefined) throw permanent(`the ${which} secret has no field \`${KEY}\``);
  return found.handle;
}

/** `key_id` from a JSON text, or undefined if it is missing or malformed. */
function keyIdIn(text) {
  let value;
  try {
    value = JSON.parse(text)?.[KEY_ID];
  } catch {
    return undefined;
  }
  return typeof value === "string" && KEY_ID_PATTERN.test(value) ? value : undefined;
}

/** `key_id` from a response body; a permanent error if it has none. */
function answeredKeyId(response, what) {
  const value = keyIdIn(new TextDecoder().decode(response.body));
  if (value === undefined) throw permanent(`${what}: the answer has no well-formed \`${KEY_ID}\``);
  return value;
}

/** One request with a key handle as bearer. */
function send(ctx, method, path, bearer, { body, captures = [] } = {}) {
  const request = {
    method,
    url: settingsUrl(ctx) + path,
    query: [],
    headers: [],
    body: body === undefined ? { tag: "empty" } : { tag: "json", val: { document: JSON.stringify(body), secrets: [] } },
    auth: { tag: "bearer", val: { tag: "secret", val: bearer } },
    captures,
    timeoutMs: undefined,
  };
  try {
    return httpSend(request);
  } catch (e) {
    const error = e?.payload ?? e;
    const message = `${method} ${path}: ${error?.tag}: ${error?.val}`;
    throw RETRYABLE.has(error?.tag) ? transient(message) : permanent(message);
  }
}

/** An answer the step did not expect: a 429 or 5xx is worth a retry. */
function unexpected(method, path, response) {
  const message = `${method} ${path} answered ${response.status}`;
  return response.status === 429 || response.status >= 500 ? transient(message) : permanent(message);
}

/** The id of the key behind `bearer`, or undefined if the service refuses it. */
function whoami(ctx, bearer) {
  const response = send(ctx, "GET", "/whoami", bearer);
  if (response.status === 401) return undefined;
  if (response.status !== 200) throw unexpected("GET", "/whoami", response);
  return answeredKeyId(response, "GET /whoami");
}

/** The secret's key id: read in clear when the job shows it, else asked of
 *  the service with the key itself (undefined: the key is no longer live). */
const keyId = (ctx, secret, which) => keyIdIn(secret.data) ?? whoami(ctx, handle(secret, which));

/** Every key this job mints is labelled with this, then the rotation id. */
const labelPrefix = (ctx) => `rotator:${ctx.jobId}:`;

/** Revoke every key labelled for this job except the current one. `create`
 *  runs only when no new key is staged, so such a key was minted by a try
 *  the host never staged (it stopped in between) and nothing holds it. */
function revokeEarlierTries(ctx, current) {
  const bearer = handle(ctx.current, "current");
  const response = send(ctx, "GET", "/keys", bearer);
  if (response.status !== 200) throw unexpected("GET", "/keys", response);
  let keys;
  try {
    keys = JSON.parse(new TextDecoder().decode(response.body))?.keys;
  } catch {
    keys = undefined;
  }
  if (!Array.isArray(keys)) throw permanent("GET /keys: the answer has no `keys` list");
  for (const key of keys) {
    const found = key?.[KEY_ID];
    const label = key?.label;
    if (
      typeof found === "string" &&
      KEY_ID_PATTERN.test(found) &&
      found !== current &&
      typeof label === "string" &&
      label.startsWith(labelPrefix(ctx))
    ) {
      revoke(ctx, found, bearer);
    }
  }
}

/** DELETE /keys/<target>; 404 means an earlier try already did it. */
function revoke(ctx, target, bearer) {
  const path = `/keys/${target}`;
  const response = send(ctx, "DELETE", path, bearer);
  if (![200, 204, 404].includes(response.status)) throw unexpected("DELETE", path, response);
  log("info", `revoked key ${target}`);
}

/** The exported `rotator` interface: jco binds it by the interface's name. */
export const rotator = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: "Rotates an API key through a REST key service, holding only handles (example plugin in JavaScript)",
      settingsSchema: JSON.stringify(SCHEMA),
      // `describe` sees no settings: `*` stands for the origin of
      // `settings.url`. Informative: the job's grants decide.
      capabilities: [
        { tag: "http", val: { origin: "*", paths: ["/keys", "/whoami"], methods: ["GET", "POST", "DELETE"] } },
      ],
      access: "handles",
      visibleFields: [KEY_ID],
    };
  },

  plan(ctx) {
    const url = settingsUrl(ctx);
    return [
      { step: "create", summary: `revoke keys earlier tries left at ${url}/keys, then mint a new key with the current key` },
      { step: "test", summary: `call ${url}/whoami with the new key` },
      { step: "finish", summary: "revoke the old key" },
    ];
  },

  create(ctx) {
    if (ctx.current === undefined) {
      throw invalidConfig(`the job's secret must hold a first \`${KEY}\` to mint the next one with`);
    }
    const current = keyId(ctx, ctx.current, "current");
    if (current === undefined) throw permanent("the service refuses the current key (401)");
    revokeEarlierTries(ctx, current);
    const response = send(ctx, "POST", "/keys", handle(ctx.current, "current"), {
      body: { label: labelPrefix(ctx) + ctx.rotationId },
      captures: [{ field: KEY, source: { tag: "json-pointer", val: `/${KEY}` } }],
    });
    if (response.status !== 200 && response.status !== 201) throw unexpected("POST", "/keys", response);
    const newId = answeredKeyId(response, "POST /keys");
    log("info", `minted key ${newId}`);
    return { data: JSON.stringify({ [KEY_ID]: newId }), generate: [] };
  },

  set(_ctx, _pending) {
    // The service made the key live when it minted it.
  },

  test(ctx, pending) {
    // The status is the proof. The answer's `key_id` is not compared: the
    // host scrubs the value of every field it holds a handle for from
    // answers, and `key_id` is such a field.
    const response = send(ctx, "GET", "/whoami", handle(pending, "pending"));
    if (response.status === 401) throw permanent("the service refuses the new key (401)");
    if (response.status !== 200) throw unexpected("GET", "/whoami", response);
  },

  finish(ctx, pending) {
    if (ctx.current === undefined) return;
    const old = keyId(ctx, ctx.current, "current");
    if (old !== undefined && old !== keyIdIn(pending.data)) revoke(ctx, old, handle(pending, "pending"));
  },

  rollback(ctx, pending) {
    if (ctx.current === undefined) return;
    const created = keyId(ctx, pending, "pending");
    if (created !== undefined) revoke(ctx, created, handle(ctx.current, "current"));
  },
};
