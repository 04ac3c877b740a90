// The value this plugin generates: `length` letters and digits from
// `crypto.getRandomValues` (WASI random, the host's CSPRNG, inside the
// component), drawn without modulo bias. Pure functions, so `node --test`
// checks them without the host.

export const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
export const MIN_LENGTH = 8;
export const MAX_LENGTH = 1024;

/** A fresh value of `length` characters from ALPHABET, each equally likely:
 *  bytes at or above the largest multiple of the alphabet's size are thrown away. */
export function randomValue(length) {
  const limit = 256 - (256 % ALPHABET.length);
  const out = [];
  const buf = new Uint8Array(64);
  while (out.length < length) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      if (b < limit && out.length < length) out.push(ALPHABET[b % ALPHABET.length]);
    }
  }
  return out.join("");
}

/** Why `value` is not a value randomValue could have made, or undefined. */
export function check(value, length) {
  if (value.length !== length) return `${value.length} characters, wanted ${length}`;
  if ([...value].some((c) => !ALPHABET.includes(c))) return "characters outside letters and digits";
  return undefined;
}
