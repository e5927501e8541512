"""Amazon SQS: standard and FIFO queues, messages with visibility timeouts, redrive to dead-letter
queues, queue policies (the dead-letter target of EventBridge rules)."""
