"""SageMaker real-time hosting control plane: endpoint configs and endpoints (the processes behind
them run in stratum.hosting)."""
