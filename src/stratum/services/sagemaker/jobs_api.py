"""SageMaker API: Processing, Training, Transform and hyperparameter tuning jobs."""

from __future__ import annotations

from stratum.server.context import Provider


class JobsApi(Provider):
    """Operations are methods named after the API operation in snake_case (see Provider)."""
