"""SageMaker API: notebook instances, their lifecycle configurations and code repositories."""
