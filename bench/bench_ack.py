"""Acknowledgement throughput: commtest's POST /ack/<token> against a bare Starlette POST, same server.

Both run under uvicorn with the same settings (one process, loopback, no access log, the
event-loop and HTTP implementation uvicorn picks), side by side, each loaded by 16 connections for
``--seconds``, in ``--rounds`` rounds: bare GET, commtest GET, bare POST, commtest POST, so that
each ratio compares two loads of the same minute; the figures are the rounds' medians. Both servers are
warmed up first (200 links shown and answered one by one, on links of their own). commtest's POST is the
real thing: a fresh token per request (every acknowledgement is a new one, never a 409), its CSRF field,
the durable commit (synchronous=FULL on SQLite). The GET page is loaded the same way. The load comes from
``wrk`` when installed (it costs the machine least), else from an asyncio client (httpx).

    python bench/bench_ack.py [--seconds 6] [--rounds 3] [--connections 16] [--database-url URL]

Prints, last: RESULT ack_per_s=… ack_p50_ms=… ack_p99_ms=… get_per_s=… bare_per_s=… bare_get_per_s=…
ratio_to_bare=… get_ratio_to_bare=… rounds=… errors=… load_client=wrk|python (with the Python client the ratios mean nothing)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._world import fresh_engine, percentile  # noqa: E402

SECRET = "bench-only-secret-key-not-for-production"
PLAYBOOK = """
id: bench-ack
title: Acknowledgement benchmark
owner: XB-00
participants:
  - {organisation: XB-00, fields: [crisis-desk]}
steps:
  - {id: email, channel: email, template: ping, ack_deadline: 6h}
templates:
  ping: {en: {subject: "Test", body: "Confirm: {{ ack_url }}"}}
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(url: str | None, workdir: Path, n: int) -> tuple[str, list[str]]:
    """A database with one run whose ``n`` e-mail attempts were sent; their raw tokens."""
    import hashlib
    import secrets
    from datetime import datetime, timedelta, timezone

    import sqlalchemy as sa

    from channels.registry import ChannelSet
    from commtest.clock import SystemClock
    from commtest.models import ContactPoint, Endpoint, FieldOfWork, Organisation, Ping, Playbook, PlaybookRevision
    from commtest.settings import load_settings
    from scheduler.engine import RunEngine

    engine = fresh_engine(url, workdir)
    with engine.begin() as c:
        c.execute(sa.insert(FieldOfWork), [{"code": "crisis-desk", "name": "Crisis desk", "names": {}}])
        c.execute(sa.insert(Organisation), [{"code": "XB-00", "name": "Bench centre", "country": "BE",
                                             "languages": ["en"], "timezone": "Europe/Brussels", "role": "participant",
                                             "notes": "", "names": {}}])
        org = c.execute(sa.select(Organisation.id)).scalar_one()
        fid = c.execute(sa.select(FieldOfWork.id)).scalar_one()
        c.execute(sa.insert(ContactPoint), [{"code": f"XB-00/desk-{i}", "organisation_id": org, "field_id": fid,
                                             "name": f"Desk {i}", "kind": "desk", "title": "", "languages": ["en"],
                                             "active": True, "notes": ""} for i in range(n)])
        cps = c.execute(sa.select(ContactPoint.id)).scalars().all()
        c.execute(sa.insert(Endpoint), [{"contact_point_id": cp, "kind": "email", "address": f"desk{i}@bench.example",
                                         "priority": 1, "label": "", "status": "active"} for i, cp in enumerate(cps)])
        c.execute(sa.insert(Playbook), [{"id": "bench-ack", "source_path": ""}])
        c.execute(sa.insert(PlaybookRevision), [{
            "playbook_id": "bench-ack", "content_hash": hashlib.sha256(PLAYBOOK.encode()).hexdigest(),
            "title": "Acknowledgement benchmark", "owner": "XB-00", "source_path": "", "source_text": PLAYBOOK,
            "created_at": datetime.now(timezone.utc)}])
        c.execute(sa.update(Playbook).values(current_revision_id=c.execute(sa.select(PlaybookRevision.id)).scalar_one()))
    db_url = engine.url.render_as_string(hide_password=False)
    settings = load_settings(database_url=db_url, channels={"email": "smtp"})
    clock = SystemClock()
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, {}), actor="bench")
    run_id = runs.create_run("bench-ack")
    if runs.start_run(run_id) != n:
        raise SystemExit("the benchmark's run did not plan one attempt per desk")
    runs.close()
    # The attempts are marked sent directly, as the dispatcher would leave them (token, deadline,
    # expiry, address): this benchmark is about the answer; bench_dispatch.py measures the sending.
    now = datetime.now(timezone.utc)
    with engine.begin() as c:
        ids = c.execute(sa.select(Ping.id).where(Ping.run_id == run_id).order_by(Ping.id)).scalars().all()
        tokens = [secrets.token_urlsafe(32) for _ in ids]
        table = Ping.__table__  # type: ignore[attr-defined]
        c.execute(sa.update(table).where(table.c.id == sa.bindparam("pid")).values(
            state="sent", provider="smtp", dispatching_at=now, sent_at=now, deadline_at=now + timedelta(hours=6),
            token_hash=sa.bindparam("th"), token_expires_at=now + timedelta(days=7)),
            [{"pid": i, "th": hashlib.sha256(t.encode()).hexdigest()} for i, t in zip(ids, tokens)])
    engine.dispose()
    return db_url, tokens


SERVERS = {
    "commtest": """
        import os
        from commtest.clock import SystemClock
        from commtest.db import make_engine
        from commtest.settings import load_settings
        from web.app import create_app
        settings = load_settings(database_url=os.environ["BENCH_DB"], secret_key=os.environ["BENCH_SECRET"],
                                 public_base_url=os.environ["BENCH_BASE"], ack_rate_limit_per_minute=10**9,
                                 channels={"email": "smtp"})
        app = create_app(settings, make_engine(settings.database_url), SystemClock())
    """,
    "bare": """
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse
        from starlette.routing import Route

        async def post(request):
            form = await request.form()
            return HTMLResponse("<!DOCTYPE html><p>ok " + str(len(form)) + "</p>")

        async def get(request):
            return HTMLResponse("<!DOCTYPE html><form method=post><button>ok</button></form>")

        app = Starlette(routes=[Route("/ack/{token}", post, methods=["POST"]), Route("/ack/{token}", get)])
    """,
}


def serve(kind: str, port: int, env: dict[str, str], tmp: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    module = tmp / f"bench_server_{kind}.py"
    module.write_text(textwrap.dedent(SERVERS[kind]))
    cmd = [sys.executable, "-m", "uvicorn", f"bench_server_{kind}:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=tmp, env={**os.environ, **env, "PYTHONPATH": f"{tmp}:{REPO}"})
    import httpx

    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/ack/x", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the {kind} server did not start")


WARM_UP = 200  # links for the warm-up, each shown and answered once


def warm_up(port: int, gets: list[str], posts: list[str]) -> None:
    """Show and answer ``WARM_UP`` links one after the other, then give the server a moment."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for get, post in zip(gets, posts, strict=True):
            client.get(get.split("\t", 1)[0])
            path, body = post.split("\t", 1)
            client.post(path, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    time.sleep(1)


def csrf_for(tokens: list[str]) -> list[str]:
    """The confirmation form's CSRF field for each token, as the GET page would issue it."""
    from commtest.clock import SystemClock
    from commtest.settings import load_settings
    from scheduler.records import token_hash
    from web.csrf import CsrfSigner

    signer = CsrfSigner.from_settings(load_settings(secret_key=SECRET), SystemClock())
    return [signer.issue(token_hash(token)) for token in tokens]


WRK_SCRIPT = """
-- Each wrk thread takes every n-th request (its own Lua state), so no token is posted twice.
local bodies = {}
local paths = {}
local method = "%s"
for line in io.lines("%s") do
  local path, body = line:match("([^\\t]+)\\t(.*)")
  paths[#paths + 1] = path
  bodies[#bodies + 1] = body
end
local counter = 0
local threads = 2
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local i = nil
init = function(args)
  i = id
end
request = function()
  i = i + threads
  if i > #paths then i = (i %% threads) + 1 end
  if method == "POST" then
    return wrk.format("POST", paths[i], {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[i])
  end
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %%d, \\"seconds\\": %%f, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f, " ..
    "\\"errors\\": %%d, \\"non2xx\\": %%d}\\n", summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status))
end
"""


def load(port: int, method: str, lines: list[str], seconds: float, connections: int, tmp: Path) -> dict[str, float]:
    """Requests per second and latency, with wrk when installed, else an asyncio client."""
    data = tmp / f"requests-{port}-{method}.tsv"
    data.write_text("\n".join(lines) + "\n")
    if shutil.which("wrk"):
        script = tmp / f"load-{port}-{method}.lua"
        script.write_text(WRK_SCRIPT % (method, data))
        out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:.0f}s", "-s", str(script),
                              "--latency", f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
        result = json.loads(re.search(r"JSON (\{.*\})", out).group(1))  # type: ignore[union-attr]
        return {"per_s": result["requests"] / result["seconds"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                "errors": result["errors"] + result["non2xx"], "requests": result["requests"]}
    return asyncio.run(_aload(port, method, lines, seconds, connections))


async def _aload(port: int, method: str, lines: list[str], seconds: float, connections: int) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    index = 0
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=connections)) as c:
        async def worker() -> None:
            nonlocal index, errors
            while time.perf_counter() < end:
                path, body = lines[index % len(lines)].split("\t", 1)
                index += 1
                t0 = time.perf_counter()
                r = await (c.post(path, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
                           if method == "POST" else c.get(path))
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code >= 300
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        took = time.perf_counter() - t0
    return {"per_s": len(latencies) / took, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "errors": errors, "requests": len(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=6, help="each load")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the four loads; the figures are their medians (this machine is noisy)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=150_000,
                    help="acknowledgements prepared (each used once: a round of POSTs needs rate × seconds of its own)")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--workers", type=int, default=1,
                    help="uvicorn worker processes for both servers (COMMTEST_WEB_WORKERS; PostgreSQL for more than 1)")
    ap.add_argument("--only", choices=("bare", "commtest"), default=None, help="load one server only (profiling)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ack-"))
    t0 = time.perf_counter()
    db_url, tokens = prepare(args.database_url, REPO / "var" / "bench" / "ack", args.tokens)
    print(f"prepared {len(tokens)} sent attempts in {time.perf_counter() - t0:.1f} s ({db_url.split('://')[0]})")
    posts = [f"/ack/{tok}\tcsrf={csrf}&name=Bench" for tok, csrf in zip(tokens, csrf_for(tokens))]
    gets = [f"/ack/{tok}\t" for tok in tokens]
    port_c, port_b = _port(), _port()
    env = {"BENCH_DB": db_url, "BENCH_SECRET": SECRET, "BENCH_BASE": f"http://127.0.0.1:{port_c}"}
    kinds = [k for k in ("bare", "commtest") if args.only in (None, k)]
    # Both servers run throughout (the one not loaded is idle), and each commtest load follows the
    # bare server's load of the same kind: a ratio compares two loads seconds apart, in the same
    # minute of this machine, whose speed swings by half from one hour to the next.
    procs = {k: serve(k, port, env, tmp, args.workers) for k, port in (("bare", port_b), ("commtest", port_c)) if k in kinds}
    ports = {"bare": port_b, "commtest": port_c}
    # A warm-up on links of its own: what a server does once (its first pages, the writer process
    # that the first form page starts and its imports) is not measured as its speed.
    for kind in kinds:
        warm_up(ports[kind], gets[:WARM_UP], posts[:WARM_UP])
    tokens, posts, gets = tokens[WARM_UP:], posts[WARM_UP:], gets[WARM_UP:]
    share = len(tokens) // args.rounds  # each round its own links: a link is answered once, and its page
    rounds: list[dict[str, dict[str, float]]] = []  # shown before it is answered
    try:
        for i in range(args.rounds):
            mine = slice(i * share, (i + 1) * share)
            results: dict[str, dict[str, float]] = {}
            for method, lines in (("GET", gets[mine]), ("POST", posts[mine])):
                for kind in kinds:
                    results[f"{kind}_{method.lower()}"] = load(ports[kind], method, lines, args.seconds,
                                                               args.connections, tmp)
            rounds.append(results)
            print(f"round {i + 1}: " + "  ".join(f"{name} {r['per_s']:.0f}/s" for name, r in results.items()))
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
    names = [f"{k}_{m}" for k in ("bare", "commtest") for m in ("get", "post")]
    nan = {"per_s": float("nan"), "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": 0, "requests": 0}
    med = {name: {f: median(r.get(name, nan)[f] for r in rounds) for f in ("per_s", "p50_ms", "p99_ms")}
           for name in names}
    for name in names:
        m = med[name]
        print(f"{name:14s} {m['per_s']:8.0f} /s  p50 {m['p50_ms']:6.1f} ms  p99 {m['p99_ms']:6.1f} ms  "
              f"requests {sum(r.get(name, nan)['requests'] for r in rounds):.0f}  "
              f"errors {sum(r.get(name, nan)['errors'] for r in rounds):.0f}  (median of {len(rounds)} rounds)")
    if any(r.get("commtest_post", nan)["requests"] > share for r in rounds):
        print("warning: more POSTs in a round than links for it: some were repeats (409); raise --tokens")
    ratio = median(r.get("commtest_post", nan)["per_s"] / r.get("bare_post", nan)["per_s"] for r in rounds)
    get_ratio = median(r.get("commtest_get", nan)["per_s"] / r.get("bare_get", nan)["per_s"] for r in rounds)
    errors = sum(r.get(n, nan)["errors"] for r in rounds for n in ("commtest_post", "commtest_get"))
    client = "wrk" if shutil.which("wrk") else "python"
    if client == "python":
        # The Python client caps both servers at a few hundred requests a second: the ratios
        # then compare the client with itself. Said last but one, so that nobody reads them as figures.
        print("warning: wrk is not installed; the Python load client caps both servers, so the ratios "
              "below say nothing about commtest (apt-get install wrk)")
    ack, get, bare, bare_get = (med[k] for k in ("commtest_post", "commtest_get", "bare_post", "bare_get"))
    print(f"RESULT ack_per_s={ack['per_s']:.0f} ack_p50_ms={ack['p50_ms']:.1f} ack_p99_ms={ack['p99_ms']:.1f} "
          f"get_per_s={get['per_s']:.0f} bare_per_s={bare['per_s']:.0f} bare_get_per_s={bare_get['per_s']:.0f} "
          f"ratio_to_bare={ratio:.2f} get_ratio_to_bare={get_ratio:.2f} rounds={len(rounds)} "
          f"errors={errors:.0f} load_client={client}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
