"""Pipelines: definitions, their validation, pipeline records and the execution API."""
