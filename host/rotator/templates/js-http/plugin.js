// {{name}}: a rotator plugin that changes a user's password through an HTTP
// API, here RabbitMQ's management API: `PUT /api/users/{name}` sets the
// password, `GET /api/whoami` proves it.
//
// Calls are made as an administrator whose credential is a KV secret the
// `admin` setting names (read through the host's `vault` import), never as
// the user being changed: a retried `set` then logs in the same way every
// time. The job's secret holds the user's credential as `username` and
// `password` (other fields are kept).
//
// Every step is idempotent by design: `set` is a `PUT` of the whole
// credential, so sending it twice is one change (no create-then-delete,
// whose second attempt would answer differently), and `rollback` is the same
// `PUT` with the current password. User names are percent-encoded as one
// path segment, so a name like `a/b` or `..` cannot reach another resource.

import * as rp from "./rotator-plugin.js";
import { MAX_LENGTH, MIN_LENGTH, check, randomValue } from "./policy.js";

const NAME = "{{name}}";
const VERSION = "0.1.0";
const DEFAULT_LENGTH = 32;
const TIMEOUT_MS = 15000;

// The JSON schema of the settings: the host checks a job's settings against
// it before any step, and `rotator plugin inspect` shows it.
const SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  title: `${NAME} settings`,
  type: "object",
  additionalProperties: false,
  "x-rotator-public-fields": ["username"],
  required: ["url", "username", "admin"],
  properties: {
    url: {
      type: "string",
      pattern: "^https?://[^/?#]+$",
      description: "The API's origin, e.g. http://rabbitmq:15672; the job needs an http grant for it.",
    },
    username: { type: "string", minLength: 1, maxLength: 255, description: "The user whose password is rotated." },
    admin: {
      type: "object",
      additionalProperties: false,
      required: ["mount", "path"],
      properties: { mount: { type: "string", minLength: 1 }, path: { type: "string", minLength: 1 } },
      description: "The KV secret with the administrator's `username` and `password`.",
    },
    length: {
      type: "integer",
      minimum: 16,
      maximum: 256,
      default: DEFAULT_LENGTH,
      description: "Length of the new password, in letters and digits.",
    },
  },
};

/** The `username` and `password` fields of a secret's JSON. */
function loginOf(secret, what) {
  const { username, password } = rp.fields(secret);
  if (typeof username !== "string" || typeof password !== "string") {
    throw rp.permanent(`${what} lacks a \`username\` or \`password\` field`);
  }
  return { username, password };
}

/** A 2xx passes; 429 and 5xx are worth a retry; anything else is not. */
function checkStatus(status, what) {
  if (status >= 200 && status < 300) return;
  const message = `${what} answered ${status}`;
  throw status === 429 || status >= 500 ? rp.transient(message) : rp.permanent(message);
}

/** The job's settings. The host validated them against SCHEMA; checking
 *  again keeps a gap between the schema and this code a typed error
 *  instead of a trap. */
function loadSettings(ctx) {
  const { url, username, admin, length = DEFAULT_LENGTH } = rp.settings(ctx);
  if (typeof url !== "string" || !/^https?:\/\/[^/?#]+\/?$/.test(url)) {
    throw rp.invalidConfig("settings.url must be an origin, like http://rabbitmq:15672");
  }
  if (typeof username !== "string" || username === "") {
    throw rp.invalidConfig("settings.username must be a non-empty string");
  }
  if (typeof admin?.mount !== "string" || typeof admin?.path !== "string") {
    throw rp.invalidConfig("settings.admin must be { mount, path }");
  }
  if (!Number.isInteger(length) || length < MIN_LENGTH || length > MAX_LENGTH) {
    throw rp.invalidConfig(`settings.length must be from ${MIN_LENGTH} to ${MAX_LENGTH}`);
  }
  const origin = url.replace(/\/$/, "");
  // Dots too, so `..` is a name, not a step up.
  const segment = encodeURIComponent(username).replaceAll(".", "%2E");
  return { url: origin, username, admin, length, userUrl: `${origin}/api/users/${segment}` };
}

/** `method url` sent as `login`, `body` as JSON. */
function call(method, url, login, body) {
  return rp.call(rp.http.send, {
    method,
    url,
    query: [],
    headers: [],
    body: body === undefined ? { tag: "empty" } : { tag: "json", val: { document: JSON.stringify(body), secrets: [] } },
    auth: {
      tag: "basic",
      val: { username: { tag: "plain", val: login.username }, password: { tag: "plain", val: login.password } },
    },
    captures: [],
    timeoutMs: TIMEOUT_MS,
  });
}

/** The administrator's login, from the KV secret `admin` names. */
function adminLogin(s) {
  const { mount, path } = s.admin;
  const secret = rp.call(rp.vault.kvRead, mount, path);
  if (secret === undefined) throw rp.invalidConfig(`the admin secret ${mount}/${path} does not exist`);
  return loginOf(secret.data, "the admin secret");
}

/** `PUT` the user with `password`, keeping its tags: the same call twice
 *  is one change. */
function putPassword(s, password) {
  const admin = adminLogin(s);
  const found = call("GET", s.userUrl, admin);
  if (found.status === 404) throw rp.permanent(`user \`${s.username}\` does not exist`);
  checkStatus(found.status, `GET ${s.userUrl}`);
  const { tags = "" } = JSON.parse(new TextDecoder().decode(found.body));
  // A list since RabbitMQ 3.9, a comma-separated string before.
  const joined = Array.isArray(tags) ? tags.join(",") : String(tags);
  checkStatus(call("PUT", s.userUrl, admin, { password, tags: joined }).status, `PUT ${s.userUrl}`);
}

/** The password in `secret`, checked to be for this job's user. */
function passwordIn(s, secret) {
  const { username, password } = loginOf(secret, "the secret");
  if (username !== s.username) {
    throw rp.permanent(`the secret is for user \`${username}\`, but this job rotates user \`${s.username}\``);
  }
  return password;
}

/** The exported `rotator` interface (jco binds it by the interface's name). */
export const rotator = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: "Changes a user's password through an HTTP API (RabbitMQ's management API)",
      settingsSchema: JSON.stringify(SCHEMA),
      capabilities: [
        // `*`: the origin the job's `settings.url` names.
        { tag: "http", val: { origin: "*", paths: ["/api/users/", "/api/whoami"], methods: ["GET", "PUT"] } },
        // The admin secret (a KV v2 read).
        { tag: "vault", val: { path: "+/data/*", operations: ["read"] } },
      ],
      access: "values",
      visibleFields: [],
    };
  },

  plan(ctx) {
    const s = loadSettings(ctx);
    const admin = `${s.admin.mount}/${s.admin.path}`;
    return [
      { step: "create", summary: `generate a ${s.length}-character password` },
      { step: "set", summary: `as the administrator in ${admin}: GET ${s.userUrl}, PUT it with the new password` },
      { step: "test", summary: `GET ${s.url}/api/whoami as \`${s.username}\` with it` },
      { step: "rollback", summary: `PUT ${s.userUrl} with the current password` },
    ];
  },

  create(ctx) {
    const s = loadSettings(ctx);
    const data = rp.currentFields(ctx);
    data.username = s.username;
    data.password = randomValue(s.length);
    return { data: rp.toJson(data), generate: [] };
  },

  set(ctx, pending) {
    const s = loadSettings(ctx);
    putPassword(s, passwordIn(s, pending.data));
    rp.info(`changed the password of user \`${s.username}\``);
  },

  test(ctx, pending) {
    const s = loadSettings(ctx);
    const password = passwordIn(s, pending.data);
    // A password `create` could not have made is refused before it is tried.
    const why = check(password, s.length);
    if (why !== undefined) throw rp.permanent(`the new password: ${why}`);
    const { status } = call("GET", `${s.url}/api/whoami`, { username: s.username, password });
    if (status === 401) throw rp.permanent(`the API refused the new password of \`${s.username}\``);
    checkStatus(status, "GET /api/whoami");
  },

  finish(_ctx, _pending) {},

  rollback(ctx, _pending) {
    const s = loadSettings(ctx);
    if (ctx.current === undefined) {
      // The first rotation has no password to go back to.
      rp.warn(`no previous password of user \`${s.username}\` to put back`);
      return;
    }
    putPassword(s, passwordIn(s, ctx.current.data));
    rp.info(`put the previous password of user \`${s.username}\` back`);
  },
};
