"""Amazon EventBridge: event buses, their resource policies, and PutEvents into a durable event log."""
