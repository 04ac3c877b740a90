"""python-kv: rotates one field of a KV secret to a random value.

The same job as rotator's built-in `kv-random`, reduced to its core, as an
example of a plugin written in Python and built with componentize-py. The KV
secret is itself the target, so the plugin needs no capability: `create`
keeps the current fields and replaces the rotated one, the host writes the
result as a new KV version, and `test` checks the value before it is
promoted.

Randomness comes from `secrets`, which reads `os.urandom`; inside the
component that is WASI random, the host's CSPRNG. The `random` module is
for simulations, not secrets: its Mersenne Twister is predictable from its
output.
"""

import json
import secrets
import string

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import (
    Action,
    Context,
    NewSecret,
    PluginInfo,
    RotateError_InvalidConfig,
    RotateError_Permanent,
    Secret,
    SecretAccess,
    Step,
)

NAME = "python-kv"
VERSION = "0.1.0"
ALPHABET = string.ascii_letters + string.digits
DEFAULT_LENGTH = 32
MIN_LENGTH = 8
MAX_LENGTH = 1024

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": f"{NAME} settings",
    "type": "object",
    "additionalProperties": False,
    "required": ["field"],
    "properties": {
        "field": {"type": "string", "minLength": 1, "description": "The field of the secret to rotate."},
        "length": {
            "type": "integer",
            "minimum": MIN_LENGTH,
            "maximum": MAX_LENGTH,
            "default": DEFAULT_LENGTH,
            "description": "Length of the new value, in letters and digits.",
        },
    },
}


class Settings:
    """The job's settings. The host validates them against SCHEMA before
    any step; checking again here keeps a mismatch between SCHEMA and this
    code from ending in an uncaught exception, which would trap."""

    def __init__(self, ctx: Context):
        try:
            raw = json.loads(ctx.settings)
        except ValueError as e:
            raise Err(RotateError_InvalidConfig(f"settings are not JSON: {e}"))
        if not isinstance(raw, dict):
            raise Err(RotateError_InvalidConfig("settings must be a table"))
        field = raw.get("field")
        length = raw.get("length", DEFAULT_LENGTH)
        if not isinstance(field, str) or not field:
            raise Err(RotateError_InvalidConfig("settings.field must be a non-empty string"))
        if type(length) is not int or not MIN_LENGTH <= length <= MAX_LENGTH:
            raise Err(RotateError_InvalidConfig(f"settings.length must be an integer from {MIN_LENGTH} to {MAX_LENGTH}"))
        self.field = field
        self.length = length


def fields(data: str) -> dict:
    """A secret's fields; anything but a JSON object is a permanent error."""
    try:
        value = json.loads(data)
    except ValueError:
        raise Err(RotateError_Permanent("secret data is not JSON"))
    if not isinstance(value, dict):
        raise Err(RotateError_Permanent("secret data is not a JSON object"))
    return value


def current_fields(ctx: Context) -> dict:
    return fields(ctx.current.data) if ctx.current is not None else {}


class Rotator(exports.Rotator):
    """The exported `rotator` interface: componentize-py looks this class up
    by the interface's name."""

    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Sets one field of a KV secret to a random value (example plugin in Python)",
            settings_schema=json.dumps(SCHEMA),
            capabilities=[],
            # The KV secret is the target: the plugin reads and writes its
            # values itself, so it asks for value mode.
            access=SecretAccess.VALUES,
            visible_fields=[],
        )

    def plan(self, ctx: Context) -> list[Action]:
        s = Settings(ctx)
        kept = len([k for k in current_fields(ctx) if k != s.field])
        return [
            Action(
                step=Step.CREATE,
                summary=f"generate a {s.length}-character value for field `{s.field}`; keep {kept} other field(s)",
            ),
            Action(step=Step.TEST, summary=f"check field `{s.field}` has {s.length} letters and digits"),
        ]

    def create(self, ctx: Context) -> NewSecret:
        s = Settings(ctx)
        data = current_fields(ctx)
        data[s.field] = "".join(secrets.choice(ALPHABET) for _ in range(s.length))
        log.write(log.Level.INFO, f"generated a {s.length}-character value for field `{s.field}`")
        # The plugin draws the value itself (a `generate` entry would let the
        # host do it); every field is in `data`, so nothing is left to the host.
        return NewSecret(data=json.dumps(data), generate=[])

    def set(self, ctx: Context, pending: Secret) -> None:
        # The KV secret is the target; the host writes the new version.
        return None

    def test(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        value = fields(pending.data).get(s.field)
        if not isinstance(value, str):
            raise Err(RotateError_Permanent(f"field `{s.field}` is missing"))
        if len(value) != s.length:
            raise Err(RotateError_Permanent(f"field `{s.field}` has {len(value)} characters, wanted {s.length}"))
        if any(c not in ALPHABET for c in value):
            raise Err(RotateError_Permanent(f"field `{s.field}` has characters outside letters and digits"))

    def finish(self, ctx: Context, pending: Secret) -> None:
        return None

    def rollback(self, ctx: Context, pending: Secret) -> None:
        # Nothing was applied outside the KV secret, which the host owns.
        return None
