"""The pipeline execution engine: compiles definitions to DAGs, schedules ready steps, runs step
handlers and records every transition durably."""
