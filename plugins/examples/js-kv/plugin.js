// js-kv: rotates one field of a KV secret to a random value.
//
// The same job as rotator's built-in `kv-random`, reduced to its core, as an
// example of a plugin written in JavaScript and built with jco
// (componentize-js). The KV secret is itself the target, so the plugin needs
// no capability: `create` keeps the current fields and replaces the rotated
// one, the host writes the result as a new KV version, and `test` checks the
// value before it is promoted.
//
// Randomness comes from `crypto.getRandomValues`, which is WASI random (the
// host's CSPRNG) inside the component. Values from the WIT map to JS as jco
// documents: records are objects with camelCase keys, `option<T>` is the
// value or `undefined`, `u64` is a BigInt, variants are `{ tag, val }`, and
// throwing from an export whose WIT type is `result<_, E>` returns `err(E)`.

import { write as log } from "rotator:plugin/log@0.2.0";

const NAME = "js-kv";
const VERSION = "0.1.0";
const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const DEFAULT_LENGTH = 32;
const MIN_LENGTH = 8;
const MAX_LENGTH = 1024;

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

const invalidConfig = (message) => ({ tag: "invalid-config", val: message });
const permanent = (message) => ({ tag: "permanent", val: message });

/** The job's settings. The host validates them against SCHEMA before any
 *  step; checking again here keeps a mismatch between SCHEMA and this code
 *  from ending in an uncaught exception, which would trap. */
function settings(ctx) {
  let raw;
  try {
    raw = JSON.parse(ctx.settings);
  } catch (e) {
    throw invalidConfig(`settings are not JSON: ${e.message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw invalidConfig("settings must be a table");
  }
  const { field, length = DEFAULT_LENGTH } = raw;
  if (typeof field !== "string" || field === "") {
    throw invalidConfig("settings.field must be a non-empty string");
  }
  if (!Number.isInteger(length) || length < MIN_LENGTH || length > MAX_LENGTH) {
    throw invalidConfig(`settings.length must be an integer from ${MIN_LENGTH} to ${MAX_LENGTH}`);
  }
  return { field, length };
}

/** A secret's fields; anything but a JSON object is a permanent error. */
function fields(data) {
  let value;
  try {
    value = JSON.parse(data);
  } catch {
    throw permanent("secret data is not JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw permanent("secret data is not a JSON object");
  }
  return value;
}

const currentFields = (ctx) => (ctx.current === undefined ? {} : fields(ctx.current.data));

/** `length` characters from ALPHABET, drawn without modulo bias: bytes at or
 *  above the largest multiple of the alphabet's size are thrown away. */
function randomValue(length) {
  const limit = 256 - (256 % ALPHABET.length);
  const out = [];
  const buf = new Uint8Array(Math.max(64, length * 2));
  while (out.length < length) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      if (b < limit && out.length < length) out.push(ALPHABET[b % ALPHABET.length]);
    }
  }
  return out.join("");
}

/** The exported `rotator` interface: jco binds it by the interface's name. */
export const rotator = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: "Sets one field of a KV secret to a random value (example plugin in JavaScript)",
      settingsSchema: JSON.stringify(SCHEMA),
      capabilities: [],
      // The KV secret is the target: the plugin reads and writes its values
      // itself, so it asks for value mode.
      access: "values",
      visibleFields: [],
    };
  },

  plan(ctx) {
    const s = settings(ctx);
    const kept = Object.keys(currentFields(ctx)).filter((k) => k !== s.field).length;
    return [
      { step: "create", summary: `generate a ${s.length}-character value for field \`${s.field}\`; keep ${kept} other field(s)` },
      { step: "test", summary: `check field \`${s.field}\` has ${s.length} letters and digits` },
    ];
  },

  create(ctx) {
    const s = settings(ctx);
    const data = currentFields(ctx);
    data[s.field] = randomValue(s.length);
    log("info", `generated a ${s.length}-character value for field \`${s.field}\``);
    // The plugin draws the value itself (a `generate` entry would let the
    // host do it); every field is in `data`, so nothing is left to the host.
    return { data: JSON.stringify(data), generate: [] };
  },

  set(_ctx, _pending) {
    // The KV secret is the target; the host writes the new version.
  },

  test(ctx, pending) {
    const s = settings(ctx);
    const value = fields(pending.data)[s.field];
    if (typeof value !== "string") throw permanent(`field \`${s.field}\` is missing`);
    if (value.length !== s.length) {
      throw permanent(`field \`${s.field}\` has ${value.length} characters, wanted ${s.length}`);
    }
    if ([...value].some((c) => !ALPHABET.includes(c))) {
      throw permanent(`field \`${s.field}\` has characters outside letters and digits`);
    }
  },

  finish(_ctx, _pending) {},

  rollback(_ctx, _pending) {
    // Nothing was applied outside the KV secret, which the host owns.
  },
};
