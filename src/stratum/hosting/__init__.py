"""Hosting runtime: the model-server processes behind real-time endpoints, their supervision, and
the routes the runtime API (sagemaker-runtime) sends invocations along. The API layer lives in
stratum.services.sagemaker.hosting (control plane) and stratum.services.sagemaker_runtime."""
