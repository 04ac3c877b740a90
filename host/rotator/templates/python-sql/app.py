"""{{name}}: a rotator plugin that changes a PostgreSQL role's password
through the host's `sql` import.

The plugin never sees the database's admin credentials: it names an SQL
connection the operator declared (`[sql.connections.<name>]`), and the host
connects. The job's secret holds the role's credential as `username` and
`password` (other fields are kept). `create` draws a new password, `set` runs
`ALTER ROLE ... PASSWORD $1`, `test` logs in with it, and `rollback` puts the
current password back.

Every step is idempotent, so a rotation that crashes anywhere resumes
cleanly: setting the same password twice is one change, and a login probe
changes nothing. The password only ever travels as a statement parameter,
never in the statement's text.
"""

import json

import policy
import rotator_plugin as rp
from rotator_plugin import sql
from wit_world import exports
from wit_world.imports.types import Action, Capability_Sql, Context, NewSecret, PluginInfo, Secret, SecretAccess, Step

NAME = "{{name}}"
VERSION = "0.1.0"
DEFAULT_LENGTH = 32

# The JSON schema of the settings: the host checks a job's settings against
# it before any step, and `rotator plugin inspect` shows it. The `username`
# field of the secret is shown in clear in logs and reports.
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": f"{NAME} settings",
    "type": "object",
    "additionalProperties": False,
    "x-rotator-public-fields": ["username"],
    "required": ["connection", "username"],
    "properties": {
        "connection": {
            "type": "string",
            "minLength": 1,
            "description": "The SQL connection whose admin changes the password; the job needs an `sql` grant for it.",
        },
        "username": {"type": "string", "minLength": 1, "maxLength": 63, "description": "The role whose password is rotated."},
        "length": {
            "type": "integer",
            "minimum": 16,
            "maximum": 256,
            "default": DEFAULT_LENGTH,
            "description": "Length of the new password, in letters and digits.",
        },
    },
}


def quote_ident(name: str) -> str:
    """`name` as a PostgreSQL identifier: in double quotes, inner quotes
    doubled. A NUL cannot be quoted and is refused."""
    if not name or "\0" in name:
        raise rp.permanent("a role name must be non-empty and hold no NUL")
    return '"' + name.replace('"', '""') + '"'


class Settings:
    """The job's settings. The host validated them against SCHEMA; checking
    again keeps a gap between the schema and this code a typed error
    instead of a trap."""

    def __init__(self, ctx: Context):
        raw = rp.settings(ctx)
        self.connection = raw.get("connection")
        self.username = raw.get("username")
        self.length = raw.get("length", DEFAULT_LENGTH)
        for key in ("connection", "username"):
            if not isinstance(raw.get(key), str) or not raw.get(key):
                raise rp.invalid_config(f"settings.{key} must be a non-empty string")
        if type(self.length) is not int or not policy.MIN_LENGTH <= self.length <= policy.MAX_LENGTH:
            raise rp.invalid_config(f"settings.length must be from {policy.MIN_LENGTH} to {policy.MAX_LENGTH}")

    def set_password(self, password: str) -> None:
        """`ALTER ROLE "<username>" PASSWORD $1`."""
        statement = f"ALTER ROLE {quote_ident(self.username)} PASSWORD $1"
        rp.call(sql.execute, self.connection, statement, [sql.SqlValue_Text(password)])

    def password_in(self, secret: str) -> str:
        """The password in `secret`, checked to be for this job's role."""
        data = rp.fields(secret)
        user, password = data.get("username"), data.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise rp.permanent("the secret lacks a `username` or `password` field")
        if user != self.username:
            raise rp.permanent(f"the secret is for role `{user}`, but this job rotates role `{self.username}`")
        return password


class Rotator(exports.Rotator):
    """The exported `rotator` interface (componentize-py finds it by name)."""

    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Changes a PostgreSQL role's password through an SQL connection",
            settings_schema=json.dumps(SCHEMA),
            # `*`: the connection the job's `settings.connection` names.
            capabilities=[Capability_Sql("*")],
            access=SecretAccess.VALUES,
            visible_fields=[],
        )

    def plan(self, ctx: Context) -> list[Action]:
        s = Settings(ctx)
        role = quote_ident(s.username)
        return [
            Action(step=Step.CREATE, summary=f"generate a {s.length}-character password for {role}"),
            Action(step=Step.SET, summary=f"on `{s.connection}`: ALTER ROLE {role} PASSWORD $1"),
            Action(step=Step.TEST, summary=f"log in to `{s.connection}` as {role} with the new password"),
            Action(step=Step.ROLLBACK, summary=f"put the current password of {role} back"),
        ]

    def create(self, ctx: Context) -> NewSecret:
        s = Settings(ctx)
        data = rp.current_fields(ctx)
        data["username"] = s.username
        data["password"] = policy.random_value(s.length)
        return NewSecret(data=rp.to_json(data), generate=[])

    def set(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        s.set_password(s.password_in(pending.data))
        rp.info(f"changed the password of role `{s.username}` on `{s.connection}`")

    def test(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        password = s.password_in(pending.data)
        # A password `create` could not have made is refused before it is tried.
        why = policy.check(password, s.length)
        if why is not None:
            raise rp.permanent(f"the new password: {why}")
        if not rp.call(sql.try_login, s.connection, s.username, password):
            raise rp.permanent(f"`{s.connection}` refused the new password of role `{s.username}`")

    def finish(self, ctx: Context, pending: Secret) -> None:
        return None

    def rollback(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        if ctx.current is None:
            # The first rotation has no password to go back to.
            rp.warn(f"no previous password of role `{s.username}` to put back")
            return None
        s.set_password(s.password_in(ctx.current.data))
        rp.info(f"put the previous password of role `{s.username}` back")
