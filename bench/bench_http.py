"""HTTP benchmark: authorized protected reads per second over loopback, beside the same server's /health.

One ``rempart serve`` process (uvicorn, one worker, uvloop and httptools when
installed, access log off) on the demo deployment; a grant lets operator:alice
read one protected field of one subject. With 16 concurrent connections:

* ``/health``: the floor of this HTTP stack on this machine (no auth, no database);
* the authorized read: bearer token checked against the control database, the
  gateway's facts, Cedar decision (memoized), the decision durably in the log,
  the record read from its region and decrypted, masked, answered as JSON.

The load generator is Debian's ``wrk`` (installed by this script with apt-get
if missing, with a Lua script adding the Authorization header), in its own
process with 2 threads; without it, an asyncio httpx client in a separate
process. ``python -m bench http [--quick]``; results in bench/results/http.json.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.unit.api.harness import rempart_server

from bench.report import print_table, write_json
from rempart import Client
from rempart.cli._connect import load_signer

CONNECTIONS = 16


def _wrk() -> str | None:
    found = shutil.which("wrk")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, check=False)
        found = shutil.which("wrk")
    return found


def _run_wrk(wrk: str, url: str, token: str | None, seconds: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if token:
            script.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    out = subprocess.run(
        [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = dict(re.findall(r"\s(50|90|99)%\s+([\d.]+\w+)", out))
    return {
        "rps": rate,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "p50": lat.get("50"),
        "p99": lat.get("99"),
        "tool": "wrk -t2 -c16",
    }


def _httpx_worker(url: str, token: str | None, seconds: float, queue: Any) -> None:
    import httpx

    async def main() -> tuple[int, int, list[float]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        done = bad = 0
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
            end = time.perf_counter() + seconds

            async def one() -> None:
                nonlocal done, bad
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    response = await client.get(url)
                    latencies.append(time.perf_counter() - t)
                    done += 1
                    bad += response.status_code != 200

            await asyncio.gather(*(one() for _ in range(CONNECTIONS)))
        return done, bad, latencies

    queue.put(asyncio.run(main()))


def _run_httpx(url: str, token: str | None, seconds: int) -> dict[str, Any]:
    queue: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_httpx_worker, args=(url, token, seconds, queue))
    proc.start()
    done, bad, latencies = queue.get()
    proc.join()
    latencies.sort()
    return {
        "rps": done / seconds,
        "non_2xx": bad,
        "p50": f"{latencies[len(latencies) // 2] * 1000:.2f}ms",
        "p99": f"{latencies[int(len(latencies) * 0.99)] * 1000:.2f}ms",
        "tool": "httpx asyncio, 16 tasks",
    }


def main(argv: list[str]) -> None:
    seconds = 5 if "--quick" in argv else 15
    wrk = _wrk()
    with (
        tempfile.TemporaryDirectory(prefix="rempart-bench-http-") as tmp,
        rempart_server(Path(tmp) / "data") as server,
    ):
        with Client(server.url, server.tokens["operator:alice"]) as alice:
            request = alice.request_access(
                region="us",
                fields=["contact.email"],
                subjects=["us-0001"],
                purpose="customer_support",
                ticket="BENCH-1",
                duration_seconds=3600,
            )
        with Client(server.url, server.tokens["custodian:carol"]) as carol:
            carol.approve(request.id, load_signer(server.key("custodian:carol")))
        read_url = f"{server.url}/subjects/us-0001/records/contact/main?purpose=customer_support&fields=email"
        with Client(server.url, server.tokens["operator:alice"]) as alice:
            assert alice.get_record(
                "us-0001", "contact", "main", purpose="customer_support", fields=["email"]
            ).fields == {"email": "mia.thompson@example.com"}
        run = (lambda u, t: _run_wrk(wrk, u, t, seconds)) if wrk else (lambda u, t: _run_httpx(u, t, seconds))
        run(f"{server.url}/health", None)  # warm up
        floor = run(f"{server.url}/health", None)
        reads = run(read_url, server.tokens["operator:alice"])
    share = reads["rps"] / floor["rps"]
    rows = [
        ["GET /health (floor)", floor["rps"], floor["p50"], floor["p99"], floor["non_2xx"]],
        ["authorized protected read", reads["rps"], reads["p50"], reads["p99"], reads["non_2xx"]],
    ]
    print_table(
        f"HTTP on loopback, {CONNECTIONS} concurrent clients ({floor['tool']}, {seconds}s each)",
        ["route", "requests/s", "p50", "p99", "non-2xx"],
        rows,
    )
    print(
        f"authorized reads: {reads['rps']:,.0f}/s = {share:.0%} of the /health floor "
        f"(goal: >= 2,000/s and >= 40%)"
    )
    path = write_json(
        "http",
        {
            "connections": CONNECTIONS,
            "seconds": seconds,
            "health": floor,
            "authorized_read": reads,
            "read_share_of_floor": share,
        },
    )
    print(f"wrote {path}")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
