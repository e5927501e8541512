"""Callback steps: a token is issued, the step waits for SendPipelineExecutionStepSuccess/Failure.

SageMaker sends the token in a message to the step's SQS queue (Arguments / SqsQueueUrl). Stratum
has no SQS service: the token and queue URL are in the step's Metadata, where
ListPipelineExecutionSteps shows them: {"Callback": {"CallbackToken", "SqsQueueUrl",
"OutputParameters"}}. A waiting step holds no thread; the API records the outcome durably and
tells the engine. As in SageMaker, StopPipelineExecution does not end a waiting Callback step:
the step shows Stopping and the execution stops once the callback arrives.
"""

from __future__ import annotations

import secrets
import string
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select

from stratum.engine import records
from stratum.engine.lambda_step import output_text, typed_output
from stratum.engine.records import ExecKey
from stratum.engine.tables import sagemaker_callback_tokens as tokens_t

_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 10  # the CallbackToken shape: exactly 10 of [a-zA-Z0-9]

_INSERT = insert(tokens_t)
_FIND = select(tokens_t).where(tokens_t.c.token == bindparam("token"))


def new_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))


def queue_url(step: dict[str, Any], arguments: Any) -> str:
    url = step.get("SqsQueueUrl")
    if url is None and isinstance(arguments, dict):
        url = arguments.get("SqsQueueUrl")
    return url if isinstance(url, str) else ""


def begin(conn: Connection, key: ExecKey, *, pipeline_name_key: str, seq: int, step_name: str, url: str,
          declared_outputs: Any, now: datetime) -> dict[str, Any]:
    """Issue a token for the step and return its Metadata; the step row becomes Executing."""
    token = new_token()
    conn.execute(_INSERT, {"token": token, "account_id": key.account_id, "region": key.region,
                           "execution_id": key.execution_id, "pipeline_name_key": pipeline_name_key, "seq": seq,
                           "step_name": step_name, "output_types": declared_outputs or None, "created_at": now})
    metadata = {"Callback": {"CallbackToken": token, "SqsQueueUrl": url, "OutputParameters": []}}
    records.update_step(conn, key, seq, now, status="Executing", step_metadata=metadata)
    return metadata


def find(conn: Connection, token: str) -> Row[Any] | None:
    return conn.execute(_FIND, {"token": token}).first()


def token_of(metadata: Any) -> str | None:
    callback = metadata.get("Callback") if isinstance(metadata, dict) else None
    token = callback.get("CallbackToken") if isinstance(callback, dict) else None
    return token if isinstance(token, str) else None


def success_values(token_row: Row[Any], step_metadata: Any, sent: list[dict[str, str]] | None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(properties, metadata) of a Callback step completed with ``sent`` OutputParameters.

    Values are typed by the step's declared OutputType; raises ValueError when one cannot be.
    """
    declared = {d.get("OutputName"): d.get("OutputType", "String")
                for d in (token_row.output_types or []) if isinstance(d, dict)}
    typed: dict[str, Any] = {}
    listed: list[dict[str, str]] = []
    for entry in sent or []:
        name, value = entry["Name"], entry["Value"]
        try:
            typed[name] = typed_output(value, declared.get(name, "String"))
        except (TypeError, ValueError):
            raise ValueError(f"OutputParameter '{name}' value '{value}' is not of type {declared[name]}.") from None
        listed.append({"Name": name, "Value": output_text(value)})
    metadata = dict(step_metadata or {})
    callback = dict(metadata.get("Callback") or {})
    callback["OutputParameters"] = listed
    metadata["Callback"] = callback
    return {"OutputParameters": typed}, metadata
