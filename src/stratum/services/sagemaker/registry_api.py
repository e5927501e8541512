"""SageMaker API: Model registry (model package groups and versioned packages) and models."""

from __future__ import annotations

from stratum.server.context import Provider


class RegistryApi(Provider):
    """Operations are methods named after the API operation in snake_case (see Provider)."""
