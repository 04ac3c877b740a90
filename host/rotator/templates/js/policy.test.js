// Unit tests of policy.js: `node --test` in the project folder.

import { test } from "node:test";
import assert from "node:assert/strict";

import { MAX_LENGTH, MIN_LENGTH, check, randomValue } from "./policy.js";

test("values have the length and alphabet asked for", () => {
  for (const length of [MIN_LENGTH, 24, 100, MAX_LENGTH]) {
    const value = randomValue(length);
    assert.equal(check(value, length), undefined, value);
  }
});

test("two values differ", () => {
  assert.notEqual(randomValue(24), randomValue(24));
});

test("check names what is wrong", () => {
  assert.equal(check("abc", 4), "3 characters, wanted 4");
  assert.equal(check("ab-d", 4), "characters outside letters and digits");
});
