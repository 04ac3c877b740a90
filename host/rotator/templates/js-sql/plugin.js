// {{name}}: a rotator plugin that changes a PostgreSQL role's password
// through the host's `sql` import.
//
// The plugin never sees the database's admin credentials: it names an SQL
// connection the operator declared (`[sql.connections.<name>]`), and the host
// connects. The job's secret holds the role's credential as `username` and
// `password` (other fields are kept). `create` draws a new password, `set`
// runs `ALTER ROLE ... PASSWORD $1`, `test` logs in with it, and `rollback`
// puts the current password back.
//
// Every step is idempotent, so a rotation that crashes anywhere resumes
// cleanly: setting the same password twice is one change, and a login probe
// changes nothing. The password only ever travels as a statement parameter,
// never in the statement's text.

import * as rp from "./rotator-plugin.js";
import { MAX_LENGTH, MIN_LENGTH, check, randomValue } from "./policy.js";

const NAME = "{{name}}";
const VERSION = "0.1.0";
const DEFAULT_LENGTH = 32;

// The JSON schema of the settings: the host checks a job's settings against
// it before any step, and `rotator plugin inspect` shows it. The `username`
// field of the secret is shown in clear in logs and reports.
const SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  title: `${NAME} settings`,
  type: "object",
  additionalProperties: false,
  "x-rotator-public-fields": ["username"],
  required: ["connection", "username"],
  properties: {
    connection: {
      type: "string",
      minLength: 1,
      description: "The SQL connection whose admin changes the password; the job needs an `sql` grant for it.",
    },
    username: { type: "string", minLength: 1, maxLength: 63, description: "The role whose password is rotated." },
    length: {
      type: "integer",
      minimum: 16,
      maximum: 256,
      default: DEFAULT_LENGTH,
      description: "Length of the new password, in letters and digits.",
    },
  },
};

/** `name` as a PostgreSQL identifier: in double quotes, inner quotes
 *  doubled. A NUL cannot be quoted and is refused. */
function quoteIdent(name) {
  if (name === "" || name.includes("\0")) throw rp.permanent("a role name must be non-empty and hold no NUL");
  return `"${name.replaceAll('"', '""')}"`;
}

/** The job's settings. The host validated them against SCHEMA; checking
 *  again keeps a gap between the schema and this code a typed error
 *  instead of a trap. */
function loadSettings(ctx) {
  const { connection, username, length = DEFAULT_LENGTH } = rp.settings(ctx);
  for (const [key, value] of [["connection", connection], ["username", username]]) {
    if (typeof value !== "string" || value === "") throw rp.invalidConfig(`settings.${key} must be a non-empty string`);
  }
  if (!Number.isInteger(length) || length < MIN_LENGTH || length > MAX_LENGTH) {
    throw rp.invalidConfig(`settings.length must be from ${MIN_LENGTH} to ${MAX_LENGTH}`);
  }
  return { connection, username, length };
}

/** `ALTER ROLE "<username>" PASSWORD $1`. */
function setPassword(s, password) {
  const statement = `ALTER ROLE ${quoteIdent(s.username)} PASSWORD $1`;
  rp.call(rp.sql.execute, s.connection, statement, [{ tag: "text", val: password }]);
}

/** The password in `secret`, checked to be for this job's role. */
function passwordIn(s, secret) {
  const { username, password } = rp.fields(secret);
  if (typeof username !== "string" || typeof password !== "string") {
    throw rp.permanent("the secret lacks a `username` or `password` field");
  }
  if (username !== s.username) {
    throw rp.permanent(`the secret is for role \`${username}\`, but this job rotates role \`${s.username}\``);
  }
  return password;
}

/** The exported `rotator` interface (jco binds it by the interface's name). */
export const rotator = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: "Changes a PostgreSQL role's password through an SQL connection",
      settingsSchema: JSON.stringify(SCHEMA),
      // `*`: the connection the job's `settings.connection` names.
      capabilities: [{ tag: "sql", val: "*" }],
      access: "values",
      visibleFields: [],
    };
  },

  plan(ctx) {
    const s = loadSettings(ctx);
    const role = quoteIdent(s.username);
    return [
      { step: "create", summary: `generate a ${s.length}-character password for ${role}` },
      { step: "set", summary: `on \`${s.connection}\`: ALTER ROLE ${role} PASSWORD $1` },
      { step: "test", summary: `log in to \`${s.connection}\` as ${role} with the new password` },
      { step: "rollback", summary: `put the current password of ${role} back` },
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
    setPassword(s, passwordIn(s, pending.data));
    rp.info(`changed the password of role \`${s.username}\` on \`${s.connection}\``);
  },

  test(ctx, pending) {
    const s = loadSettings(ctx);
    const password = passwordIn(s, pending.data);
    // A password `create` could not have made is refused before it is tried.
    const why = check(password, s.length);
    if (why !== undefined) throw rp.permanent(`the new password: ${why}`);
    if (!rp.call(rp.sql.tryLogin, s.connection, s.username, password)) {
      throw rp.permanent(`\`${s.connection}\` refused the new password of role \`${s.username}\``);
    }
  },

  finish(_ctx, _pending) {},

  rollback(ctx, _pending) {
    const s = loadSettings(ctx);
    if (ctx.current === undefined) {
      // The first rotation has no password to go back to.
      rp.warn(`no previous password of role \`${s.username}\` to put back`);
      return;
    }
    setPassword(s, passwordIn(s, ctx.current.data));
    rp.info(`put the previous password of role \`${s.username}\` back`);
  },
};
