"""Native tests of rotator_plugin.py, the Python helper `rotator plugin new`
ships, against the bindings componentize-py generates from the same WIT
(`componentize-py -d wit -w plugin bindings DIR` on PYTHONPATH). Run by
host/rotator/tests/scaffold.rs; only the host's functions are absent here,
so `call` is given plain Python functions that raise what they would."""

import unittest

import rotator_plugin as rp
from componentize_py_types import Err
from wit_world.imports import http, sql, vault
from wit_world.imports.types import (
    Context,
    FieldHandle,
    RotateError_InvalidConfig,
    RotateError_Permanent,
    RotateError_Transient,
    Secret,
    SecretAccess,
)


def ctx(settings: str, current=None) -> Context:
    return Context(job_id="app", rotation_id="r-1", settings=settings, current=current, attempt=1, access=SecretAccess.VALUES)


def secret(data: str) -> Secret:
    return Secret(data=data, handles=[FieldHandle(field="token", handle="rotator-handle:current/token")], version=3)


class HelperTest(unittest.TestCase):
    def raised(self, function, *args):
        with self.assertRaises(Err) as caught:
            function(*args)
        return caught.exception.value

    def test_settings_are_an_object_or_invalid_config(self):
        self.assertEqual(rp.settings(ctx('{"field": "password"}')), {"field": "password"})
        for bad in ("[1]", "{", '"text"', "null"):
            self.assertIsInstance(self.raised(rp.settings, ctx(bad)), RotateError_InvalidConfig, bad)

    def test_fields_are_an_object_or_permanent(self):
        self.assertEqual(rp.fields('{"a": "b"}'), {"a": "b"})
        for bad in ("[]", "not json", "7"):
            self.assertIsInstance(self.raised(rp.fields, bad), RotateError_Permanent, bad)
        self.assertEqual(rp.current_fields(ctx("{}")), {})
        self.assertEqual(rp.current_fields(ctx("{}", secret('{"user": "app"}'))), {"user": "app"})
        self.assertEqual(rp.fields(rp.to_json({"k": "v"})), {"k": "v"})

    def test_handles_are_found_by_field(self):
        self.assertEqual(rp.handle(secret("{}"), "token"), "rotator-handle:current/token")
        self.assertIsNone(rp.handle(secret("{}"), "password"))

    def test_host_errors_become_rotate_errors_by_whether_a_retry_helps(self):
        cases = [
            (vault.VaultError_Unavailable("down"), RotateError_Transient),
            (vault.VaultError_CasMismatch("raced"), RotateError_Transient),
            (vault.VaultError_Denied("secret/x"), RotateError_Permanent),
            (vault.VaultError_Status(vault.VaultStatus(code=503, errors=["sealed"])), RotateError_Transient),
            (vault.VaultError_Status(vault.VaultStatus(code=429, errors=[])), RotateError_Transient),
            (vault.VaultError_Status(vault.VaultStatus(code=400, errors=["bad"])), RotateError_Permanent),
            (sql.SqlError_Unavailable("down"), RotateError_Transient),
            (sql.SqlError_Failed("42601"), RotateError_Permanent),
            (sql.SqlError_UnknownConnection("app"), RotateError_InvalidConfig),
            (http.HttpError_Timeout("slow"), RotateError_Transient),
            (http.HttpError_Dns("nx"), RotateError_Transient),
            (http.HttpError_Tls("bad cert"), RotateError_Permanent),
            (http.HttpError_Denied("origin"), RotateError_Permanent),
        ]
        for error, expected in cases:
            self.assertIsInstance(rp.rotate_error(error).value, expected, error)

    def test_call_passes_results_through_and_converts_errors(self):
        self.assertEqual(rp.call(lambda a, b: a + b, 1, 2), 3)

        def denied():
            raise Err(vault.VaultError_Denied("secret/data/other"))

        error = self.raised(rp.call, denied)
        self.assertIsInstance(error, RotateError_Permanent)
        self.assertIn("secret/data/other", error.value)


if __name__ == "__main__":
    unittest.main()
