"""The table that drives the one generic reconciler: for each ACK SageMaker kind, the API operations
that create, describe, update and delete it, how it is identified, and which of its statuses are still
changing (ACK's ``modifyingStatuses``) or failed. Read from the ACK controller's generator.yaml and
pkg/resource/<kind>/ hooks; field-by-field conversion comes from the service model and the CRD schema."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "sagemaker.services.k8s.aws"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    create: str
    describe: str
    # The Describe input's identifying member and whether its value is the ARN ACK keeps in
    # status.ackResourceMetadata.arn (resources named by the API, not by the user).
    describe_key: str
    arn_field: str
    name_field: str | None = None  # API member holding the user's name, from the spec
    update: str | None = None
    delete: str | None = None
    status_field: str | None = None
    modifying: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    # Delete (or Stop) is called only in these statuses (None: always); ``gone`` statuses mean the
    # resource needs nothing more; while in ``deleting`` statuses the finalizer waits.
    delete_when: tuple[str, ...] | None = None
    deleting: tuple[str, ...] = ()
    stop_before_delete: str | None = None  # NotebookInstance: StopNotebookInstance first
    stopped: tuple[str, ...] = ()
    update_when: tuple[str, ...] | None = None
    update_only: tuple[str, ...] | None = None  # the API members an update may change (None: all)
    update_overrides: tuple[tuple[str, object], ...] = ()
    client_token: bool = False
    documents: tuple[str, ...] = ()  # JSON documents held as strings: compared parsed
    # ACK's terminal_codes, plus ValidationException (Stratum's refusal of a bad definition: no retry
    # fixes it). ResourceNotFound stays recoverable: a PipelineExecution applied together with its
    # Pipeline may be reconciled first and succeeds once the Pipeline exists.
    terminal_codes: tuple[str, ...] = ("InvalidParameterCombination", "InvalidParameterValue",
                                       "MissingParameter", "ValidationException")

    @property
    def by_arn(self) -> bool:
        return self.name_field is None

    @property
    def finalizer(self) -> str:
        return f"finalizers.{GROUP}/{self.kind}"


_JOB_MODIFYING = ("InProgress", "Stopping")


def _job(noun: str, *, update: str | None = None) -> Kind:
    return Kind(kind=noun, plural=noun.lower() + "s", create=f"Create{noun}", describe=f"Describe{noun}",
                describe_key=f"{noun}Name", arn_field=f"{noun}Arn", name_field=f"{noun}Name", update=update,
                delete=f"Stop{noun}", status_field=f"{noun}Status", modifying=_JOB_MODIFYING, failed=("Failed",),
                delete_when=("InProgress",), deleting=("Stopping",))


KINDS: dict[str, Kind] = {k.kind: k for k in [
    Kind(kind="Pipeline", plural="pipelines", create="CreatePipeline", describe="DescribePipeline",
         describe_key="PipelineName", arn_field="PipelineArn", name_field="PipelineName",
         update="UpdatePipeline", delete="DeletePipeline", status_field="PipelineStatus",
         modifying=("Deleting",), client_token=True, documents=("PipelineDefinition",)),
    # ACK: create = StartPipelineExecution, delete = StopPipelineExecution (pipeline_execution hooks).
    Kind(kind="PipelineExecution", plural="pipelineexecutions", create="StartPipelineExecution",
         describe="DescribePipelineExecution", describe_key="PipelineExecutionArn",
         arn_field="PipelineExecutionArn", update="UpdatePipelineExecution", delete="StopPipelineExecution",
         status_field="PipelineExecutionStatus", modifying=("Executing", "Stopping"), client_token=True,
         delete_when=("Executing",), deleting=("Stopping",)),
    Kind(kind="ModelPackageGroup", plural="modelpackagegroups", create="CreateModelPackageGroup",
         describe="DescribeModelPackageGroup", describe_key="ModelPackageGroupName",
         arn_field="ModelPackageGroupArn", name_field="ModelPackageGroupName", delete="DeleteModelPackageGroup",
         status_field="ModelPackageGroupStatus", modifying=("Pending", "InProgress", "Deleting"),
         failed=("Failed", "DeleteFailed"), deleting=("Deleting",)),
    # Versioned packages are named by the API: ACK keeps the ARN and describes by it.
    Kind(kind="ModelPackage", plural="modelpackages", create="CreateModelPackage",
         describe="DescribeModelPackage", describe_key="ModelPackageName", arn_field="ModelPackageArn",
         update="UpdateModelPackage", delete="DeleteModelPackage", status_field="ModelPackageStatus",
         modifying=("Pending", "InProgress", "Deleting"), failed=("Failed",), deleting=("Deleting",),
         client_token=False),
    Kind(kind="Model", plural="models", create="CreateModel", describe="DescribeModel",
         describe_key="ModelName", arn_field="ModelArn", name_field="ModelName", delete="DeleteModel"),
    Kind(kind="EndpointConfig", plural="endpointconfigs", create="CreateEndpointConfig",
         describe="DescribeEndpointConfig", describe_key="EndpointConfigName", arn_field="EndpointConfigArn",
         name_field="EndpointConfigName", delete="DeleteEndpointConfig"),
    # ACK endpoint hooks: update only from InService (RetainAllVariantProperties), delete waits.
    Kind(kind="Endpoint", plural="endpoints", create="CreateEndpoint", describe="DescribeEndpoint",
         describe_key="EndpointName", arn_field="EndpointArn", name_field="EndpointName", update="UpdateEndpoint",
         delete="DeleteEndpoint", status_field="EndpointStatus",
         modifying=("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"), failed=("Failed",),
         deleting=("Deleting",), update_when=("InService",), update_only=("EndpointConfigName",),
         update_overrides=(("RetainAllVariantProperties", True),)),
    _job("TrainingJob"),
    _job("ProcessingJob"),
    _job("TransformJob"),
    _job("HyperParameterTuningJob"),
    Kind(kind="NotebookInstance", plural="notebookinstances", create="CreateNotebookInstance",
         describe="DescribeNotebookInstance", describe_key="NotebookInstanceName",
         arn_field="NotebookInstanceArn", name_field="NotebookInstanceName", delete="DeleteNotebookInstance",
         status_field="NotebookInstanceStatus", modifying=("Pending", "Updating", "Stopping", "Deleting"),
         failed=("Failed",), deleting=("Deleting",), stop_before_delete="StopNotebookInstance",
         stopped=("Stopped", "Failed")),
    Kind(kind="NotebookInstanceLifecycleConfig", plural="notebookinstancelifecycleconfigs",
         create="CreateNotebookInstanceLifecycleConfig", describe="DescribeNotebookInstanceLifecycleConfig",
         describe_key="NotebookInstanceLifecycleConfigName", arn_field="NotebookInstanceLifecycleConfigArn",
         name_field="NotebookInstanceLifecycleConfigName", update="UpdateNotebookInstanceLifecycleConfig",
         delete="DeleteNotebookInstanceLifecycleConfig"),
]}
