"""{{name}}: a rotator plugin that sets one field of a KV secret to a random value.

The KV secret is itself the target, so the plugin needs no capability:
`create` keeps the current fields and replaces the rotated one, the host
writes the result as a new KV version, and `test` checks the value before
the host promotes it. Start your own rotator from here: `set` applies the
new secret to a target system, `test` proves it works there, `rollback`
undoes `set`.
"""

import json

import policy
import rotator_plugin as rp
from wit_world import exports
from wit_world.imports.types import Action, Context, NewSecret, PluginInfo, Secret, SecretAccess, Step

NAME = "{{name}}"
VERSION = "0.1.0"
DEFAULT_LENGTH = 32

# The JSON schema of the settings: the host checks a job's settings against
# it before any step, and `rotator plugin inspect` shows it.
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
            "minimum": policy.MIN_LENGTH,
            "maximum": policy.MAX_LENGTH,
            "default": DEFAULT_LENGTH,
            "description": "Length of the new value, in letters and digits.",
        },
    },
}


class Settings:
    """The job's settings. The host validated them against SCHEMA; checking
    again keeps a gap between the schema and this code a typed error
    instead of a trap."""

    def __init__(self, ctx: Context):
        raw = rp.settings(ctx)
        self.field = raw.get("field")
        self.length = raw.get("length", DEFAULT_LENGTH)
        if not isinstance(self.field, str) or not self.field:
            raise rp.invalid_config("settings.field must be a non-empty string")
        if type(self.length) is not int or not policy.MIN_LENGTH <= self.length <= policy.MAX_LENGTH:
            raise rp.invalid_config(f"settings.length must be from {policy.MIN_LENGTH} to {policy.MAX_LENGTH}")


class Rotator(exports.Rotator):
    """The exported `rotator` interface (componentize-py finds it by name)."""

    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Sets one field of a KV secret to a random value",
            settings_schema=json.dumps(SCHEMA),
            capabilities=[],
            # The KV secret is the target: the plugin reads and writes its
            # values itself, so it asks for value mode.
            access=SecretAccess.VALUES,
            visible_fields=[],
        )

    def plan(self, ctx: Context) -> list[Action]:
        s = Settings(ctx)
        return [
            Action(step=Step.CREATE, summary=f"generate a {s.length}-character value for field `{s.field}`"),
            Action(step=Step.TEST, summary=f"check field `{s.field}` has {s.length} letters and digits"),
        ]

    def create(self, ctx: Context) -> NewSecret:
        s = Settings(ctx)
        data = rp.current_fields(ctx)
        data[s.field] = policy.random_value(s.length)
        rp.info(f"generated a {s.length}-character value for field `{s.field}`")
        return NewSecret(data=rp.to_json(data), generate=[])

    def set(self, ctx: Context, pending: Secret) -> None:
        # The KV secret is the target; the host writes the new version.
        return None

    def test(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        value = rp.fields(pending.data).get(s.field)
        if not isinstance(value, str):
            raise rp.permanent(f"field `{s.field}` is missing")
        why = policy.check(value, s.length)
        if why is not None:
            raise rp.permanent(f"field `{s.field}`: {why}")

    def finish(self, ctx: Context, pending: Secret) -> None:
        return None

    def rollback(self, ctx: Context, pending: Secret) -> None:
        # Nothing was applied outside the KV secret, which the host owns.
        return None
