"""An ACK-compatible Kubernetes operator: serves the AWS Controllers for Kubernetes (ACK) SageMaker
custom resources (group sagemaker.services.k8s.aws) by calling Stratum's own SageMaker API with boto3,
as the ACK controller calls AWS. `stratum operator` runs it (kopf watches, a work queue reconciles)."""
