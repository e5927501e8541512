"""Cluster benchmark: pipeline steps per second across 1, 2, 3... servers on one PostgreSQL database.

For each cluster size N: a fresh PostgreSQL database, one shared data directory (object store,
master key), N real server subprocesses (`stratum serve --database-url ...`). The same load for
every N: E executions of a C-step chain of Condition steps (cheap steps: the figure is what the
servers and the database do per step, not user code), started through the servers round-robin as a
load balancer would (each server claims and runs the executions started through it), by K client
threads with boto3. The clock runs from the first StartPipelineExecution until the database shows
no execution left Executing; steps/s = E x C / that time. Afterwards every step row is checked
(E x C rows, all Succeeded, no execution ran twice: one row per step) and no claim is left.

Also per N: the servers' CPU seconds (sum over the N processes) and PostgreSQL's (every postgres
process of the machine), so the curve can be read against what the machine had to give.

Usage: python bench/cluster.py [--servers 1,2,3] [--executions 200] [--chain 10] [--concurrency 6]
                               [--rounds 1] [--synchronous-commit on|off]
                               [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))


def chain(n: int) -> str:
    steps = []
    for i in range(n):
        step: dict[str, Any] = {"Name": f"C{i}", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Parameters.X"}, "RightValue": 1}],
            "IfSteps": [], "ElseSteps": []}}
        if i:
            step["DependsOn"] = [f"C{i - 1}"]
        steps.append(step)
    return json.dumps({"Version": "2020-12-01", "Parameters": [{"Name": "X", "Type": "Integer", "DefaultValue": 1}],
                       "Steps": steps})


def cpu_times(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each process still alive."""
    times = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            times[pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return times


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots (a process that exited meanwhile is not counted)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def postgres_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


def run(n: int, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import create_engine, text
    from stratum_testing import StratumServer, create_pg_database, drop_pg_database

    os.environ["STRATUM_TEST_PG"] = args.pg
    url = create_pg_database()
    if args.synchronous_commit != "on":
        import psycopg

        with psycopg.connect(args.pg, autocommit=True) as admin:  # every later session of the database
            admin.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET synchronous_commit TO '
                          f'{args.synchronous_commit}')
    tmp = Path(tempfile.mkdtemp(prefix=f"stratum-cluster-{n}-"))
    servers = [StratumServer(tmp, url, [], backend="postgresql", log_path=tmp / f"server{i}.log") for i in range(n)]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        for srv in servers:
            srv.start()
        account = servers[0].account_id("dev")
        servers[0].client("sagemaker").create_pipeline(
            PipelineName="bench-chain", PipelineDefinition=chain(args.chain),
            RoleArn=f"arn:aws:iam::{account}:role/bench")
        clients = [[srv.client("sagemaker") for srv in servers] for _ in range(args.concurrency)]
        # Warm-up: one execution per server, not counted.
        for client in clients[0]:
            client.start_pipeline_execution(PipelineName="bench-chain")
        _wait_idle(engine, time.monotonic() + 60)
        with engine.connect() as conn:
            warm = conn.execute(text("SELECT count(*) FROM sagemaker_pipeline_execution_steps")).scalar()

        pids = [srv.proc.pid for srv in servers if srv.proc]
        pg = postgres_pids()  # the database's backends, its CPU: every postgres process of the machine
        cpu0, pg0 = cpu_times(pids), cpu_times(pg)
        errors: list[str] = []
        counter = iter(range(args.executions))
        lock = threading.Lock()

        def starter(k: int) -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                try:  # round-robin over the servers, as a load balancer would
                    clients[k][i % n].start_pipeline_execution(PipelineName="bench-chain")
                except Exception as exc:
                    errors.append(repr(exc))

        t0 = time.monotonic()
        threads = [threading.Thread(target=starter, args=(k,)) for k in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = time.monotonic() - t0
        _wait_idle(engine, time.monotonic() + 600)
        elapsed = time.monotonic() - t0
        cpu, pg_cpu = cpu_used(cpu0, cpu_times(pids)), cpu_used(pg0, cpu_times(postgres_pids()))

        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM sagemaker_pipeline_execution_steps "
                                     "GROUP BY status")).all()
            dupes = conn.execute(text("SELECT count(*) FROM (SELECT account_id, execution_id, step_name "
                                      "FROM sagemaker_pipeline_execution_steps GROUP BY 1, 2, 3 "
                                      "HAVING count(*) > 1) d")).scalar()
            executions = dict(conn.execute(text("SELECT status, count(*) FROM sagemaker_pipeline_executions "
                                                "GROUP BY status")).all())
            claims = conn.execute(text("SELECT count(*) FROM stratum_claims")).scalar()
        steps = {status: count for status, count in rows}
        total_steps = args.executions * args.chain
        ok = (not errors and steps == {"Succeeded": warm + total_steps} and dupes == 0 and claims == 0
              and executions == {"Succeeded": args.executions + n})
        return {"servers": n, "executions": args.executions, "steps": total_steps, "elapsed_s": elapsed,
                "start_phase_s": started, "steps_per_s": total_steps / elapsed,
                "server_cpu_s": cpu, "postgres_cpu_s": pg_cpu, "ok": ok, "errors": errors[:3],
                "step_rows": steps, "duplicate_steps": dupes, "claims_left": claims}
    finally:
        for srv in servers:
            srv.stop()
        engine.dispose()
        drop_pg_database(url)


def _wait_idle(engine: Any, deadline: float) -> None:
    from sqlalchemy import text

    while time.monotonic() < deadline:
        with engine.connect() as conn:
            active = conn.execute(text("SELECT count(*) FROM sagemaker_pipeline_executions "
                                       "WHERE status IN ('Executing', 'Stopping')")).scalar()
        if not active:
            return
        time.sleep(0.05)
    raise SystemExit("executions did not finish in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="1,2,3")
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--chain", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--pg", default=os.environ.get("STRATUM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--rounds", type=int, default=1, help="repeat every size, interleaved; medians")
    parser.add_argument("--synchronous-commit", default="on", choices=["on", "off"],
                        help="off: commits do not wait for the WAL flush (separates CPU from disk)")
    parser.add_argument("--json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(x) for x in args.servers.split(",")]
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"{args.executions} executions x {args.chain} Condition steps per cluster size, {args.rounds} round(s), "
          f"synchronous_commit {args.synchronous_commit}")
    header = (f"{'round':>5} {'servers':>7} {'steps':>6} {'wall s':>7} {'steps/s':>8} {'server cpu ms/step':>18} "
              f"{'pg cpu ms/step':>14} {'load':>5} {'check':>6}")
    print(header)
    results: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        for n in sizes:
            load = os.getloadavg()[0]
            r = run(n, args)
            r.update(round=round_, load=load)
            results.append(r)
            print(f"{round_:>5} {n:>7} {r['steps']:>6} {r['elapsed_s']:>7.2f} {r['steps_per_s']:>8.1f} "
                  f"{1000 * r['server_cpu_s'] / r['steps']:>18.2f} {1000 * r['postgres_cpu_s'] / r['steps']:>14.2f} "
                  f"{load:>5.1f} {'ok' if r['ok'] else 'FAIL':>6}", flush=True)
            if not r["ok"]:
                print(f"        {r}")
    print("\nmedians:")
    base = None
    for n in sizes:
        rate = statistics.median(r["steps_per_s"] for r in results if r["servers"] == n)
        base = base or rate
        print(f"  {n} server(s): {rate:7.1f} steps/s  (x{rate / base:.2f} of {sizes[0]})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
