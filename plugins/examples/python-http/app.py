"""python-http: rotates an API key through a REST service, in handle mode.

An example of an HTTP rotator written in Python and built with
componentize-py. The service and its REST shape are made up (README.md in
this folder describes them); the point is the pattern: the plugin never
holds a key. It puts the current key's *handle* into a request, and the host
fills in the value as the request leaves; the new key is captured by the
host from the service's answer straight into the new secret, and the plugin
only ever gets a handle for it.

The secret has two fields: `api_key` (secret, only ever a handle here) and
`key_id` (not secret, shown in clear through `visible-fields`).

Steps:
- create:   GET <url>/keys and revoke keys an interrupted earlier try
            minted; then POST <url>/keys, bearer = current key, capture /api_key
- set:      nothing: the service made the key live when it minted it
- test:     GET <url>/whoami, bearer = pending key (200 passes, 401 fails)
- finish:   DELETE <url>/keys/<old key_id>, bearer = pending key
- rollback: DELETE <url>/keys/<pending key_id>, bearer = current key
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import http, log
from wit_world.imports.http import (
    Auth_Bearer,
    Body_Empty,
    Body_Json,
    Capture,
    CaptureSource_JsonPointer,
    HttpError_Connect,
    HttpError_Dns,
    HttpError_Timeout,
    JsonBody,
    Request,
    Response,
    Text_Secret,
)
from wit_world.imports.types import (
    Action,
    Capability_Http,
    Context,
    HttpAccess,
    NewSecret,
    PluginInfo,
    RotateError_InvalidConfig,
    RotateError_Permanent,
    RotateError_Transient,
    Secret,
    SecretAccess,
    Step,
)

NAME = "python-http"
VERSION = "0.1.0"
# The secret's fields: the key itself (a handle only) and its id (in clear).
KEY = "api_key"
KEY_ID = "key_id"
# A key id goes into a URL path, and it comes from the service's answer:
# only plain ids are accepted, so an odd answer cannot steer a request
# elsewhere (`../admin`, `x?y`).
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": f"{NAME} settings",
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {
            "type": "string",
            "pattern": "^https?://[^/?#]+/?$",
            "description": "The key service's origin, e.g. https://keys.example.com; the job must grant it.",
        },
    },
}


def fail(error):
    """Raise a typed `rotate-error` (componentize-py returns it as `err`)."""
    raise Err(error)


def settings_url(ctx: Context) -> str:
    """`settings.url` without a trailing slash. The host validates settings
    against SCHEMA first; checking here too keeps a mismatch from trapping."""
    try:
        raw = json.loads(ctx.settings)
    except ValueError as e:
        fail(RotateError_InvalidConfig(f"settings are not JSON: {e}"))
    url = raw.get("url") if isinstance(raw, dict) else None
    if not isinstance(url, str) or not re.match(r"^https?://[^/?#]+/?$", url):
        fail(RotateError_InvalidConfig("settings.url must be an http(s) origin such as https://keys.example.com"))
    return url.rstrip("/")


def handle(secret: Secret, which: str) -> str:
    """The handle of the secret's `api_key`."""
    for h in secret.handles:
        if h.field == KEY:
            return h.handle
    fail(RotateError_Permanent(f"the {which} secret has no field `{KEY}`"))


def visible_key_id(secret: Secret):
    """The secret's `key_id` if the plugin may read it and it is well formed."""
    try:
        data = json.loads(secret.data)
    except ValueError:
        return None
    value = data.get(KEY_ID) if isinstance(data, dict) else None
    return value if isinstance(value, str) and KEY_ID_PATTERN.match(value) else None


def send(ctx: Context, method: str, path: str, bearer: str, body=None, captures=()) -> Response:
    """One request with a key handle as bearer. Network trouble the host
    reports as worth a retry is `transient`; everything else `permanent`."""
    request = Request(
        method=method,
        url=settings_url(ctx) + path,
        query=[],
        headers=[],
        body=Body_Json(JsonBody(document=json.dumps(body), secrets=[])) if body is not None else Body_Empty(),
        auth=Auth_Bearer(Text_Secret(bearer)),
        captures=list(captures),
        timeout_ms=None,
    )
    try:
        return http.send(request)
    except Err as e:
        error = e.value
        kind = type(error).__name__.removeprefix("HttpError_")
        message = f"{method} {path}: {kind}: {error.value}"
        if isinstance(error, (HttpError_Dns, HttpError_Connect, HttpError_Timeout)):
            fail(RotateError_Transient(message))
        fail(RotateError_Permanent(message))


def unexpected(method: str, path: str, response: Response):
    """An answer the step did not expect: a 429 or 5xx is worth a retry."""
    message = f"{method} {path} answered {response.status}"
    if response.status == 429 or response.status >= 500:
        fail(RotateError_Transient(message))
    fail(RotateError_Permanent(message))


def whoami(ctx: Context, bearer: str):
    """The id of the key behind `bearer`, or None if the service refuses it."""
    response = send(ctx, "GET", "/whoami", bearer)
    if response.status == 401:
        return None
    if response.status != 200:
        unexpected("GET", "/whoami", response)
    return key_id_in(response.body, "GET /whoami")


def key_id_in(body: bytes, what: str) -> str:
    """`key_id` from a JSON answer."""
    try:
        value = json.loads(body).get(KEY_ID)
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not KEY_ID_PATTERN.match(value):
        fail(RotateError_Permanent(f"{what}: the answer has no well-formed `{KEY_ID}`"))
    return value


def key_id(ctx: Context, secret: Secret, which: str):
    """The secret's key id: read in clear when the job shows it, else asked
    of the service with the key itself (None: the key is no longer live)."""
    return visible_key_id(secret) or whoami(ctx, handle(secret, which))


def label_prefix(ctx: Context) -> str:
    """Every key this job mints is labelled with this, then the rotation id."""
    return f"rotator:{ctx.job_id}:"


def revoke_earlier_tries(ctx: Context, current: str) -> None:
    """Revoke every key labelled for this job except the current one. `create`
    runs only when no new key is staged, so such a key was minted by a try
    the host never staged (it stopped in between) and nothing holds it."""
    bearer = handle(ctx.current, "current")
    response = send(ctx, "GET", "/keys", bearer)
    if response.status != 200:
        unexpected("GET", "/keys", response)
    try:
        keys = json.loads(response.body).get("keys")
    except (ValueError, AttributeError):
        keys = None
    if not isinstance(keys, list):
        fail(RotateError_Permanent("GET /keys: the answer has no `keys` list"))
    for key in keys:
        found = key.get(KEY_ID) if isinstance(key, dict) else None
        label = key.get("label") if isinstance(key, dict) else None
        if (
            isinstance(found, str)
            and KEY_ID_PATTERN.match(found)
            and found != current
            and isinstance(label, str)
            and label.startswith(label_prefix(ctx))
        ):
            revoke(ctx, found, bearer)


def revoke(ctx: Context, target: str, bearer: str) -> None:
    """DELETE /keys/<target>; 404 means an earlier try already did it."""
    path = f"/keys/{target}"
    response = send(ctx, "DELETE", path, bearer)
    if response.status not in (200, 204, 404):
        unexpected("DELETE", path, response)
    log.write(log.Level.INFO, f"revoked key {target}")


class Rotator(exports.Rotator):
    """The exported `rotator` interface: componentize-py looks this class up
    by the interface's name."""

    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Rotates an API key through a REST key service, holding only handles (example plugin in Python)",
            settings_schema=json.dumps(SCHEMA),
            # `describe` sees no settings: `*` stands for the origin of
            # `settings.url`. Informative: the job's grants decide.
            capabilities=[
                Capability_Http(HttpAccess(origin="*", paths=["/keys", "/whoami"], methods=["GET", "POST", "DELETE"]))
            ],
            access=SecretAccess.HANDLES,
            visible_fields=[KEY_ID],
        )

    def plan(self, ctx: Context) -> list[Action]:
        url = settings_url(ctx)
        return [
            Action(
                step=Step.CREATE,
                summary=f"revoke keys earlier tries left at {url}/keys, then mint a new key with the current key",
            ),
            Action(step=Step.TEST, summary=f"call {url}/whoami with the new key"),
            Action(step=Step.FINISH, summary="revoke the old key"),
        ]

    def create(self, ctx: Context) -> NewSecret:
        if ctx.current is None:
            fail(RotateError_InvalidConfig(f"the job's secret must hold a first `{KEY}` to mint the next one with"))
        current = key_id(ctx, ctx.current, "current")
        if current is None:
            fail(RotateError_Permanent("the service refuses the current key (401)"))
        revoke_earlier_tries(ctx, current)
        response = send(
            ctx,
            "POST",
            "/keys",
            handle(ctx.current, "current"),
            body={"label": label_prefix(ctx) + ctx.rotation_id},
            captures=[Capture(field=KEY, source=CaptureSource_JsonPointer(f"/{KEY}"))],
        )
        if response.status not in (200, 201):
            unexpected("POST", "/keys", response)
        new_id = key_id_in(response.body, "POST /keys")
        log.write(log.Level.INFO, f"minted key {new_id}")
        return NewSecret(data=json.dumps({KEY_ID: new_id}), generate=[])

    def set(self, ctx: Context, pending: Secret) -> None:
        # The service made the key live when it minted it.
        return None

    def test(self, ctx: Context, pending: Secret) -> None:
        # The status is the proof. The answer's `key_id` is not compared:
        # the host scrubs the value of every field it holds a handle for from
        # answers, and `key_id` is such a field.
        response = send(ctx, "GET", "/whoami", handle(pending, "pending"))
        if response.status == 401:
            fail(RotateError_Permanent("the service refuses the new key (401)"))
        if response.status != 200:
            unexpected("GET", "/whoami", response)

    def finish(self, ctx: Context, pending: Secret) -> None:
        if ctx.current is None:
            return None
        old = key_id(ctx, ctx.current, "current")
        if old is not None and old != visible_key_id(pending):
            revoke(ctx, old, handle(pending, "pending"))

    def rollback(self, ctx: Context, pending: Secret) -> None:
        if ctx.current is None:
            return None
        new = key_id(ctx, pending, "pending")
        if new is not None:
            revoke(ctx, new, handle(ctx.current, "current"))
