// {{name}}: a rotator plugin that sets one field of a KV secret to a random value.
//
// The KV secret is itself the target, so the plugin needs no capability:
// `create` keeps the current fields and replaces the rotated one, the host
// writes the result as a new KV version, and `test` checks the value before
// the host promotes it. Start your own rotator from here: `set` applies the
// new secret to a target system, `test` proves it works there, `rollback`
// undoes `set`.

import * as rp from "./rotator-plugin.js";
import { MAX_LENGTH, MIN_LENGTH, check, randomValue } from "./policy.js";

const NAME = "{{name}}";
const VERSION = "0.1.0";
const DEFAULT_LENGTH = 32;

// The JSON schema of the settings: the host checks a job's settings against
// it before any step, and `rotator plugin inspect` shows it.
const SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  title: `${NAME} settings`,
  type: "object",
  additionalProperties: false,
  required: ["field"],
  properties: {
    field: { type: "string", minLength: 1, description: "The field of the secret to rotate." },
    length: {
      type: "integer",
      minimum: MIN_LENGTH,
      maximum: MAX_LENGTH,
      default: DEFAULT_LENGTH,
      description: "Length of the new value, in letters and digits.",
    },
  },
};

/** The job's settings. The host validated them against SCHEMA; checking
 *  again keeps a gap between the schema and this code a typed error
 *  instead of a trap. */
function loadSettings(ctx) {
  const { field, length = DEFAULT_LENGTH } = rp.settings(ctx);
  if (typeof field !== "string" || field === "") {
    throw rp.invalidConfig("settings.field must be a non-empty string");
  }
  if (!Number.isInteger(length) || length < MIN_LENGTH || length > MAX_LENGTH) {
    throw rp.invalidConfig(`settings.length must be from ${MIN_LENGTH} to ${MAX_LENGTH}`);
  }
  return { field, length };
}

/** The exported `rotator` interface (jco binds it by the interface's name). */
export const rotator = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: "Sets one field of a KV secret to a random value",
      settingsSchema: JSON.stringify(SCHEMA),
      capabilities: [],
      // The KV secret is the target: the plugin reads and writes its values
      // itself, so it asks for value mode.
      access: "values",
      visibleFields: [],
    };
  },

  plan(ctx) {
    const s = loadSettings(ctx);
    return [
      { step: "create", summary: `generate a ${s.length}-character value for field \`${s.field}\`` },
      { step: "test", summary: `check field \`${s.field}\` has ${s.length} letters and digits` },
    ];
  },

  create(ctx) {
    const s = loadSettings(ctx);
    const data = rp.currentFields(ctx);
    data[s.field] = randomValue(s.length);
    rp.info(`generated a ${s.length}-character value for field \`${s.field}\``);
    return { data: rp.toJson(data), generate: [] };
  },

  set(_ctx, _pending) {
    // The KV secret is the target; the host writes the new version.
  },

  test(ctx, pending) {
    const s = loadSettings(ctx);
    const value = rp.fields(pending.data)[s.field];
    if (typeof value !== "string") throw rp.permanent(`field \`${s.field}\` is missing`);
    const why = check(value, s.length);
    if (why !== undefined) throw rp.permanent(`field \`${s.field}\`: ${why}`);
  },

  finish(_ctx, _pending) {},

  rollback(_ctx, _pending) {
    // Nothing was applied outside the KV secret, which the host owns.
  },
};
