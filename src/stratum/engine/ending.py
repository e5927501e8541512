"""What an execution's end writes besides its status, in the same transaction: SageMaker's
"Execution Status Change" event (engine.events) and the pipeline metrics (engine.metrics)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from stratum.engine import events, metrics, records
from stratum.engine.records import ExecKey
from stratum.services.cloudwatch import datapoints


def execution_ended(conn: Connection, key: ExecKey, now: datetime, *, event: bool = True) -> None:
    """The execution ``key``, whose end this transaction has just recorded (its event too, unless
    the caller wrote it)."""
    execution = records.load_execution(conn, key)
    if execution is None or execution.status not in metrics.ENDED:
        return
    if event:
        previous = "Stopping" if execution.status == "Stopped" else "Executing"
        events.execution_row_status(conn, execution, previous, now)
    datapoints.put_many(conn, metrics.execution_metrics(execution, records.load_steps(conn, key)), now)
