"""{{name}}: a rotator plugin that changes a user's password through an HTTP
API, here RabbitMQ's management API: `PUT /api/users/{name}` sets the
password, `GET /api/whoami` proves it.

Calls are made as an administrator whose credential is a KV secret the
`admin` setting names (read through the host's `vault` import), never as the
user being changed: a retried `set` then logs in the same way every time.
The job's secret holds the user's credential as `username` and `password`
(other fields are kept).

Every step is idempotent by design: `set` is a `PUT` of the whole
credential, so sending it twice is one change (no create-then-delete, whose
second attempt would answer differently), and `rollback` is the same `PUT`
with the current password. User names are percent-encoded as one path
segment, so a name like `a/b` or `..` cannot reach another resource.
"""

import json
from urllib.parse import quote

import policy
import rotator_plugin as rp
from rotator_plugin import http, vault
from wit_world import exports
from wit_world.imports.http import Auth_Basic, BasicAuth, Body_Empty, Body_Json, JsonBody, Request, Text_Plain
from wit_world.imports.types import (
    Action,
    Capability_Http,
    Capability_Vault,
    Context,
    HttpAccess,
    NewSecret,
    Operation,
    PluginInfo,
    Secret,
    SecretAccess,
    Step,
    VaultAccess,
)

NAME = "{{name}}"
VERSION = "0.1.0"
DEFAULT_LENGTH = 32
TIMEOUT_MS = 15_000

# The JSON schema of the settings: the host checks a job's settings against
# it before any step, and `rotator plugin inspect` shows it.
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": f"{NAME} settings",
    "type": "object",
    "additionalProperties": False,
    "x-rotator-public-fields": ["username"],
    "required": ["url", "username", "admin"],
    "properties": {
        "url": {
            "type": "string",
            "pattern": "^https?://[^/?#]+$",
            "description": "The API's origin, e.g. http://rabbitmq:15672; the job needs an http grant for it.",
        },
        "username": {"type": "string", "minLength": 1, "maxLength": 255, "description": "The user whose password is rotated."},
        "admin": {
            "type": "object",
            "additionalProperties": False,
            "required": ["mount", "path"],
            "properties": {"mount": {"type": "string", "minLength": 1}, "path": {"type": "string", "minLength": 1}},
            "description": "The KV secret with the administrator's `username` and `password`.",
        },
        "length": {
            "type": "integer",
            "minimum": 16,
            "maximum": 256,
            "default": DEFAULT_LENGTH,
            "description": "Length of the new password, in letters and digits.",
        },
    },
}


def login_of(secret: str, what: str) -> tuple:
    """The `username` and `password` fields of a secret's JSON."""
    data = rp.fields(secret)
    user, password = data.get("username"), data.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise rp.permanent(f"{what} lacks a `username` or `password` field")
    return user, password


def check_status(status: int, what: str) -> None:
    """A 2xx passes; 429 and 5xx are worth a retry; anything else is not."""
    if 200 <= status < 300:
        return
    message = f"{what} answered {status}"
    raise rp.transient(message) if status == 429 or status >= 500 else rp.permanent(message)


class Settings:
    """The job's settings. The host validated them against SCHEMA; checking
    again keeps a gap between the schema and this code a typed error
    instead of a trap."""

    def __init__(self, ctx: Context):
        raw = rp.settings(ctx)
        self.url = raw.get("url")
        self.username = raw.get("username")
        self.admin = raw.get("admin")
        self.length = raw.get("length", DEFAULT_LENGTH)
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise rp.invalid_config("settings.url must be an origin, like http://rabbitmq:15672")
        self.url = self.url.rstrip("/")
        if not isinstance(self.username, str) or not self.username:
            raise rp.invalid_config("settings.username must be a non-empty string")
        if not isinstance(self.admin, dict) or not all(isinstance(self.admin.get(k), str) for k in ("mount", "path")):
            raise rp.invalid_config("settings.admin must be { mount, path }")
        if type(self.length) is not int or not policy.MIN_LENGTH <= self.length <= policy.MAX_LENGTH:
            raise rp.invalid_config(f"settings.length must be from {policy.MIN_LENGTH} to {policy.MAX_LENGTH}")

    def user_url(self) -> str:
        # Dots too, so `..` is a name, not a step up.
        return f"{self.url}/api/users/{quote(self.username, safe='').replace('.', '%2E')}"

    def call(self, method: str, url: str, login: tuple, body=None):
        """`method url` sent as `login`, `body` as JSON."""
        request = Request(
            method=method,
            url=url,
            query=[],
            headers=[],
            body=Body_Json(JsonBody(document=json.dumps(body), secrets=[])) if body is not None else Body_Empty(),
            auth=Auth_Basic(BasicAuth(username=Text_Plain(login[0]), password=Text_Plain(login[1]))),
            captures=[],
            timeout_ms=TIMEOUT_MS,
        )
        return rp.call(http.send, request)

    def admin_login(self) -> tuple:
        """The administrator's login, from the KV secret `admin` names."""
        mount, path = self.admin["mount"], self.admin["path"]
        secret = rp.call(vault.kv_read, mount, path)
        if secret is None:
            raise rp.invalid_config(f"the admin secret {mount}/{path} does not exist")
        return login_of(secret.data, "the admin secret")

    def put_password(self, password: str) -> None:
        """`PUT` the user with `password`, keeping its tags: the same call
        twice is one change."""
        admin = self.admin_login()
        found = self.call("GET", self.user_url(), admin)
        if found.status == 404:
            raise rp.permanent(f"user `{self.username}` does not exist")
        check_status(found.status, f"GET {self.user_url()}")
        tags = json.loads(bytes(found.body)).get("tags", "")
        # A list since RabbitMQ 3.9, a comma-separated string before.
        tags = ",".join(tags) if isinstance(tags, list) else str(tags)
        put = self.call("PUT", self.user_url(), admin, {"password": password, "tags": tags})
        check_status(put.status, f"PUT {self.user_url()}")

    def password_in(self, secret: str) -> str:
        """The password in `secret`, checked to be for this job's user."""
        user, password = login_of(secret, "the secret")
        if user != self.username:
            raise rp.permanent(f"the secret is for user `{user}`, but this job rotates user `{self.username}`")
        return password


class Rotator(exports.Rotator):
    """The exported `rotator` interface (componentize-py finds it by name)."""

    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Changes a user's password through an HTTP API (RabbitMQ's management API)",
            settings_schema=json.dumps(SCHEMA),
            capabilities=[
                # `*`: the origin the job's `settings.url` names.
                Capability_Http(HttpAccess(origin="*", paths=["/api/users/", "/api/whoami"], methods=["GET", "PUT"])),
                # The admin secret (a KV v2 read).
                Capability_Vault(VaultAccess(path="+/data/*", operations=[Operation.READ])),
            ],
            access=SecretAccess.VALUES,
            visible_fields=[],
        )

    def plan(self, ctx: Context) -> list[Action]:
        s = Settings(ctx)
        admin = f"{s.admin['mount']}/{s.admin['path']}"
        return [
            Action(step=Step.CREATE, summary=f"generate a {s.length}-character password"),
            Action(step=Step.SET, summary=f"as the administrator in {admin}: GET {s.user_url()}, PUT it with the new password"),
            Action(step=Step.TEST, summary=f"GET {s.url}/api/whoami as `{s.username}` with it"),
            Action(step=Step.ROLLBACK, summary=f"PUT {s.user_url()} with the current password"),
        ]

    def create(self, ctx: Context) -> NewSecret:
        s = Settings(ctx)
        data = rp.current_fields(ctx)
        data["username"] = s.username
        data["password"] = policy.random_value(s.length)
        return NewSecret(data=rp.to_json(data), generate=[])

    def set(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        s.put_password(s.password_in(pending.data))
        rp.info(f"changed the password of user `{s.username}`")

    def test(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        password = s.password_in(pending.data)
        # A password `create` could not have made is refused before it is tried.
        why = policy.check(password, s.length)
        if why is not None:
            raise rp.permanent(f"the new password: {why}")
        status = s.call("GET", f"{s.url}/api/whoami", (s.username, password)).status
        if status == 401:
            raise rp.permanent(f"the API refused the new password of `{s.username}`")
        check_status(status, "GET /api/whoami")

    def finish(self, ctx: Context, pending: Secret) -> None:
        return None

    def rollback(self, ctx: Context, pending: Secret) -> None:
        s = Settings(ctx)
        if ctx.current is None:
            # The first rotation has no password to go back to.
            rp.warn(f"no previous password of user `{s.username}` to put back")
            return None
        s.put_password(s.password_in(ctx.current.data))
        rp.info(f"put the previous password of user `{s.username}` back")
