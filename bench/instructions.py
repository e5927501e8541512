"""Instructions per request of a real Stratum server, counted by valgrind's callgrind.

CPU time on a shared VM moves by up to ±20% from one minute to the next; an instruction count does
not (the same build, data and requests give the same count to within about 0.2%). This script
starts the server under ``valgrind --tool=callgrind`` with instrumentation off, creates the
benchmark data of bench/api.py with boto3, warms up, then switches instrumentation on for exactly
one phase of requests (built and signed beforehand by bench/api.py's RequestBuilder, sent by
bench/loadgen.py from this process), dumps, and prints the user-space instructions per request,
split by the shared object that executed them.

What it does not count: the kernel (system calls: socket I/O, SQLite's pwrite/fcntl/fsync), and
CPU stalls (a cache miss is one instruction). Use it to compare two versions of the code, not to
compare with moto (bench/api.py does that, in CPU time).

``--server moto`` counts moto_server the same way (its user space only: it also spends kernel time on
a thread and a connection per request, which CPU time sees and this does not).

Usage: python bench/instructions.py [--op StartPipelineExecution] [--requests 1000] [--concurrency 4]
                                    [--server stratum|moto] [--src DIR] [--keep]
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api  # noqa: E402
import loadgen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _callgrind_control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _by_object(dump: Path) -> tuple[int, dict[str, int]]:
    """Total instructions and self instructions per shared object, from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", str(dump)], check=True,
                         capture_output=True, text=True).stdout
    total = 0
    objects: dict[str, int] = defaultdict(int)
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        rest = m.group(2)
        if rest.startswith("PROGRAM TOTALS"):
            total = count
            continue
        obj = re.search(r"\[([^\]]+)\]\s*$", rest)
        if obj:
            name = Path(obj.group(1)).name
            objects[re.sub(r"\.cpython-\d+.*$|\.so[.\d]*$", "", name)] += count
    return total, dict(objects)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", default="StartPipelineExecution", help=f"one of {', '.join(api.OPS)}")
    parser.add_argument("--requests", type=int, default=1000, help="requests counted (1000)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent client connections (4)")
    parser.add_argument("--warmup", type=int, default=300, help="uncounted requests first (300)")
    parser.add_argument("--server", choices=("stratum", "moto"), default="stratum", help="which server (stratum)")
    parser.add_argument("--src", default=str(ROOT), help="the Stratum checkout to run (its src/ goes first on "
                                                         "PYTHONPATH), to compare two versions with one venv")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (log, callgrind dump)")
    args = parser.parse_args()
    if args.op not in api.OPS:
        parser.error(f"unknown operation {args.op}")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (callgrind) is not installed", file=sys.stderr)
        return 2
    op = api.OPS[args.op]
    work = Path(tempfile.mkdtemp(prefix="stratum-instructions-"))
    data, out = work / "data", work / "callgrind.out"
    port = api.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "AWS_"))}
    env["PYTHONHASHSEED"] = "0"  # string hashing (dict probing) the same in every run
    env["PYTHONPATH"] = str(Path(args.src) / "src")
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    log = work / "server.log"
    if args.server == "moto":
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTO_", "AWS_"))}
        env["PYTHONHASHSEED"] = "0"
        cmd = [*valgrind, sys.executable, str(api.VENV_BIN / "moto_server"), "-H", api.HOST, "-p", str(port)]
        ready_path, ready = "/moto-api/", (lambda status: status < 500)
    else:
        cmd = [*valgrind, sys.executable, "-m", "stratum.cli", "serve", "--data-dir", str(data), "--port", str(port)]
        ready_path, ready = "/_stratum/health", (lambda status: status == 200)
    popen = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=work)
    server = api.Server(args.server, args.server, port, popen, log)
    try:
        api._wait_ready(server, ready_path, ready, timeout=600)
        if args.server == "stratum":
            creds = configparser.ConfigParser()
            creds.read(data / "aws" / "credentials")
            server.access_key = creds["dev"]["aws_access_key_id"]
            server.secret_key = creds["dev"]["aws_secret_access_key"]
        api.setup_pipelines(server, op.service == "sagemaker")
        builder = api.RequestBuilder(port, server.access_key, server.secret_key)
        loadgen.run_phase(api.HOST, port, builder.build_many(op, args.warmup), args.concurrency)
        time.sleep(3)  # work the warm-up left behind (the engine's) is done before counting
        requests = builder.build_many(op, args.requests)
        _callgrind_control("-i", "on", str(popen.pid))
        result = loadgen.run_phase(api.HOST, port, requests, args.concurrency)
        time.sleep(3)  # and the counted requests' deferred work is counted
        _callgrind_control("-d", str(popen.pid))
        _callgrind_control("-i", "off", str(popen.pid))
        failed = {status: n for status, n in result.get("statuses", {}).items() if status != 200}
        if failed or result.get("errors"):
            print(f"!!! responses other than 200: {failed} {result.get('errors')}", file=sys.stderr)
            return 1
        dumps = sorted(work.glob("callgrind.out.*"))
        if not dumps:
            print("callgrind wrote no dump", file=sys.stderr)
            return 1
        total, objects = _by_object(dumps[-1])
        n = args.requests
        where = args.src if args.server == "stratum" else "moto_server"
        print(f"{args.op}: {total / n:,.0f} instructions per request "
              f"({n} requests, concurrency {args.concurrency}, {where})")
        shown = sorted(objects.items(), key=lambda kv: -kv[1])[:8]
        for name, count in shown:
            print(f"  {name:<28} {count / n:>10,.0f}  {100 * count / total:5.1f}%")
        rest = total - sum(count for _, count in shown)
        print(f"  {'(other objects, unnamed code)':<28} {rest / n:>10,.0f}  {100 * rest / total:5.1f}%")
        return 0
    finally:
        server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
