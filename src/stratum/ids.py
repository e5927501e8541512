"""Identifier generators in AWS's formats."""

from __future__ import annotations

import random
import secrets
import string

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


def random_chars(n: int, alphabet: str = _UPPER_ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def access_key_id(prefix: str = "AKIA") -> str:
    return prefix + random_chars(16)


def secret_access_key() -> str:
    return random_chars(40, string.ascii_letters + string.digits + "+/")


def unique_id(prefix: str) -> str:
    """IAM unique IDs: AIDA (user), AROA (role), ANPA (policy) + 17 characters."""
    return prefix + random_chars(17)


def account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def request_id() -> str:
    """A version-4 UUID. It only correlates a request with its logs, so the fast non-cryptographic
    generator will do (uuid4 reads the OS's entropy and builds an object: several times the cost)."""
    h = f"{_fast_random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_fast_random = random.Random()
_VARIANT = "89ab"


def lower_id(n: int) -> str:
    return random_chars(n, _LOWER_ALNUM)
