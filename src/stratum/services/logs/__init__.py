"""CloudWatch Logs: log groups, streams and their events."""
