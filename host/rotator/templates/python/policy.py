"""The value this plugin generates: `length` letters and digits from
`secrets` (WASI random, the host's CSPRNG, inside the component). Pure
functions, so `python3 -m unittest` checks them without the host.
The `random` module is for simulations: its output is predictable."""

import secrets
import string

ALPHABET = string.ascii_letters + string.digits
MIN_LENGTH = 8
MAX_LENGTH = 1024


def random_value(length: int) -> str:
    """A fresh value of `length` characters from ALPHABET, each equally likely."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def check(value: str, length: int):
    """Why `value` is not a value random_value could have made, or None."""
    if len(value) != length:
        return f"{len(value)} characters, wanted {length}"
    if any(c not in ALPHABET for c in value):
        return "characters outside letters and digits"
    return None
