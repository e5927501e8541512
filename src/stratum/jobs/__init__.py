"""SageMaker jobs (Processing, Training, Transform, hyperparameter tuning) run under the container
contracts as local processes, on a local process pool or a Ray cluster."""
