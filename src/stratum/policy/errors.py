"""Error type shared by every policy-parsing module (kept apart to avoid import cycles)."""

from __future__ import annotations


class MalformedPolicyDocument(ValueError):
    """A policy document failed parsing or validation.

    The message names the problem in the style IAM uses for its
    ``MalformedPolicyDocument`` error so the server can pass it straight through.
    """
