"""Built-in SageMaker algorithms implemented on the host (training and serving), and the model
server that speaks the SageMaker inference contract (/ping, /invocations)."""
