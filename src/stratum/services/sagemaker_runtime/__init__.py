"""The SageMaker Runtime API (InvokeEndpoint, InvokeEndpointAsync): invocations forwarded along the
routes the hosting supervisor publishes to the endpoints' model servers."""
