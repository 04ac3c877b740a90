// Native tests of rotator-plugin.js, the JavaScript helper `rotator plugin
// new` ships. Node cannot resolve the `rotator:plugin/…` imports, which only
// exist inside a component, so host/rotator/tests/scaffold.rs points them at
// ./host-stub.js (a `write` that records, nothing else) and runs `node --test`.

import { test } from "node:test";
import assert from "node:assert/strict";

import * as rp from "./rotator-plugin.js";
import { written } from "./host-stub.js";

const ctx = (settings, current) => ({ jobId: "app", rotationId: "r-1", settings, current, attempt: 1, access: "values" });
const secret = (data) => ({ data, handles: [{ field: "token", handle: "rotator-handle:current/token" }], version: 3n });

function thrown(fn, ...args) {
  try {
    fn(...args);
  } catch (e) {
    return e;
  }
  assert.fail("nothing was thrown");
}

test("settings are an object or invalid-config", () => {
  assert.deepEqual(rp.settings(ctx('{"field": "password"}')), { field: "password" });
  for (const bad of ["[1]", "{", '"text"', "null"]) {
    assert.equal(thrown(rp.settings, ctx(bad)).tag, "invalid-config", bad);
  }
});

test("fields are an object or permanent", () => {
  assert.deepEqual(rp.fields('{"a": "b"}'), { a: "b" });
  for (const bad of ["[]", "not json", "7"]) assert.equal(thrown(rp.fields, bad).tag, "permanent", bad);
  assert.deepEqual(rp.currentFields(ctx("{}")), {});
  assert.deepEqual(rp.currentFields(ctx("{}", secret('{"user": "app"}'))), { user: "app" });
  assert.deepEqual(rp.fields(rp.toJson({ k: "v" })), { k: "v" });
});

test("handles are found by field", () => {
  assert.equal(rp.handle(secret("{}"), "token"), "rotator-handle:current/token");
  assert.equal(rp.handle(secret("{}"), "password"), undefined);
});

test("host errors become rotate-errors by whether a retry helps", () => {
  const cases = [
    [{ tag: "unavailable", val: "down" }, "transient"],
    [{ tag: "cas-mismatch", val: "raced" }, "transient"],
    [{ tag: "denied", val: "secret/x" }, "permanent"],
    [{ tag: "status", val: { code: 503, errors: ["sealed"] } }, "transient"],
    [{ tag: "status", val: { code: 429, errors: [] } }, "transient"],
    [{ tag: "status", val: { code: 400, errors: ["bad"] } }, "permanent"],
    [{ tag: "failed", val: "42601" }, "permanent"],
    [{ tag: "unknown-connection", val: "app" }, "invalid-config"],
    [{ tag: "timeout", val: "slow" }, "transient"],
    [{ tag: "dns", val: "nx" }, "transient"],
    [{ tag: "tls", val: "bad cert" }, "permanent"],
  ];
  for (const [error, expected] of cases) assert.equal(rp.rotateError(error).tag, expected, JSON.stringify(error));
});

test("call passes results through and converts errors", () => {
  assert.equal(rp.call((a, b) => a + b, 1, 2), 3);
  const denied = () => {
    const e = new Error("denied");
    e.payload = { tag: "denied", val: "secret/data/other" };
    throw e;
  };
  const error = thrown(rp.call, denied);
  assert.equal(error.tag, "permanent");
  assert.match(error.val, /secret\/data\/other/);
});

test("logging goes through the host's write", () => {
  rp.info("hello");
  rp.error("oops");
  assert.deepEqual(written.slice(-2), [["info", "hello"], ["error", "oops"]]);
});
