"""Training, processing, transform and tuning jobs: the API over stratum.jobs."""
