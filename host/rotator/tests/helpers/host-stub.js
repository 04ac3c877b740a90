// Stands in for the `rotator:plugin/…` imports when rotator-plugin.js is
// tested natively: `write` records what would go to the host's log.

export const written = [];

export function write(level, message) {
  written.push([level, message]);
}
