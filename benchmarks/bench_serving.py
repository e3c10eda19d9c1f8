"""HTTP serving latency and throughput: BentoML against a bare Starlette app, measured with wrk.

Usage:
    uv run --frozen python benchmarks/bench_serving.py [--duration 30] [--concurrency 1,8,32]
        [--server NAME=COMMAND ...] [--baseline NAME] [--path /win_probability] [--body JSON|@FILE]
        [--route PATH=BODY ...] [--rounds N]

Each server is started as a subprocess (its own process group) on a free loopback port. COMMAND is
split like a shell line and ``{port}`` in it is replaced by that port; prefix it with ``env K=V``
to set variables. Readiness is the first 200 answer to the benchmark request itself. After a short
warm-up, wrk runs once per concurrency (one wrk thread by default, so that the server keeps the
other core of a 2-core machine) with a Lua script that posts the body and prints the latency
distribution as JSON. The table (requests/s, p50/p90/p99/max, errors, throughput relative to the
baseline at the same concurrency, the server's CPU time per request (its process tree, from
/proc), 1-minute load average before the run) is printed as Markdown and saved with the raw
figures under benchmarks/out/serving/.

Without --server, four servers of benchmarks/serving/ serve the same LightGBM booster (300
trees, 40 features) for one JSON record: ``bare`` (Starlette + uvicorn), ``bentoml-default``
(BentoML 1.4 defaults, sync API), ``bentoml-tuned`` (the configuration of RESULTS.md) and
``bentoml-mounted`` (the bare Starlette route mounted in a tuned BentoML service).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVING = ROOT / "benchmarks" / "serving"
OUT = ROOT / "benchmarks" / "out" / "serving"

_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"max_us\\": %d, \\"mean_us\\": %.1f, \\"connect\\": %d, \\"read\\": %d, " ..
    "\\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


def default_servers() -> dict[str, str]:
    py = shlex.quote(sys.executable)
    bento = (
        f"{py} -m bentoml serve --working-dir {shlex.quote(str(SERVING))} --host 127.0.0.1 --port {{port}}"
    )
    return {
        "bare": f"{py} -m uvicorn bare_app:app --app-dir {shlex.quote(str(SERVING))} "
        "--host 127.0.0.1 --port {port} --workers 1 --no-access-log",
        "bentoml-default": f"{bento} bento_service:WinProbability",
        "bentoml-tuned": f"{bento} bento_service:WinProbabilityTuned",
        "bentoml-mounted": f"{bento} bento_mounted:WinProbabilityMounted",
    }


def default_body() -> str:
    sys.path.insert(0, str(SERVING))
    from model import example_body

    return json.dumps(example_body())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, timeout: float = 2.0) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def start_server(command: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"}
    argv = shlex.split(command.replace("{port}", str(port)))
    with log.open("wb") as fh:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_ready(proc: subprocess.Popen[bytes], url: str, body: bytes, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        try:
            status = post(url, body)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {timeout:.0f} s ({last}); see {log}")


def run_wrk(url: str, connections: int, duration: float, threads: int, lua: Path, body_file: Path) -> dict:
    threads = max(1, min(threads, connections))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(lua),
        url,
    ]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "requests": raw["requests"],
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "errors": errors,
        "error_detail": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")},
    }


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live descendants, in seconds (``nan`` without /proc).

    The server's workers are its descendants (BentoML's run in sessions of their own), so this is
    the server's whole CPU: divided by the requests answered between two readings, the CPU a request
    costs, which a busy machine changes far less than the latency.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return float("nan")
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # from field 3 (state) on
        parent[int(entry.name)] = int(fields[1])  # field 4: the parent
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    tree, todo = {pid}, [pid]
    while todo:
        current = todo.pop()
        children = [p for p, pp in parent.items() if pp == current and p not in tree]
        tree.update(children)
        todo += children
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def table(rows: list[dict], baseline: str) -> str:
    """Markdown: one line per run; with several routes or rounds, a column for each (ratios per round)."""
    key = ("round", "route", "concurrency")
    base = {tuple(r.get(k) for k in key): r["rps"] for r in rows if r["server"] == baseline}
    nan = float("nan")
    routes = len({r.get("route") for r in rows}) > 1 or len({r.get("round") for r in rows}) > 1
    head = "| round | route " if routes else ""
    lines = [
        head + "| server | conc. | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| vs baseline | server CPU ms/request | load |",
        ("| ---: | --- " if routes else "")
        + "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        reference = base.get(tuple(r.get(k) for k in key))
        ratio = r["rps"] / reference if reference else nan
        lead = f"| {r.get('round')} | `{r.get('route')}` " if routes else ""
        lines.append(
            f"{lead}| {r['server']} | {r['concurrency']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} "
            f"| {r['p90_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['errors']} | {ratio:.0%} "
            f"| {r.get('server_cpu_ms', nan):.2f} | {r['load1']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per wrk run (default 30)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated connection counts")
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help=(
            "server to start; {port} in COMMAND is replaced "
            "(repeatable; default: the three of benchmarks/serving)"
        ),
    )
    parser.add_argument("--only", default="", help="comma-separated names of the default servers to run")
    parser.add_argument("--baseline", default=None, help="server the ratios refer to (default: the first)")
    parser.add_argument("--path", default="/win_probability", help="request path (POST)")
    parser.add_argument(
        "--body", default=None, help="JSON request body, or @FILE (default: one 40-feature record)"
    )
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="PATH=BODY",
        help="a request path and its JSON body or @FILE (repeatable; each server answers them all; "
        "overrides --path/--body)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="start every server this many times, in turn (default 1)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unrecorded load after readiness"
    )
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print(
            "bench_serving: wrk is not installed (apt-get install wrk); no measurement was made.",
            file=sys.stderr,
        )
        return 2

    servers = dict(s.split("=", 1) for s in args.server) if args.server else default_servers()
    if args.only:
        servers = {k: v for k, v in servers.items() if k in args.only.split(",")}
    if not servers:
        parser.error("no server selected")
    baseline = args.baseline or next(iter(servers))
    if baseline not in servers:
        parser.error(f"baseline {baseline!r} is not one of the servers: {', '.join(servers)}")
    concurrency = [int(c) for c in args.concurrency.split(",")]

    def read_body(text: str | None) -> str:
        if text is None:
            return default_body()
        return Path(text[1:]).read_text() if text.startswith("@") else text

    routes = [(r.split("=", 1)[0], read_body(r.split("=", 1)[1])) for r in args.route] or [
        (args.path, read_body(args.body))
    ]

    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    lua = work / "post.lua"
    lua.write_text(_LUA)
    bodies = []
    for i, (_, body) in enumerate(routes):
        bodies.append(work / f"body{i}.json")
        bodies[-1].write_text(body)

    rows: list[dict] = []
    failed: list[str] = []
    for round_ in range(1, args.rounds + 1):
        for name, command in servers.items():
            port = free_port()
            log = OUT / f"{stamp}-{name}-{round_}.log"
            proc = start_server(command, port, log)
            try:
                try:
                    for path, body in routes:
                        wait_ready(
                            proc, f"http://127.0.0.1:{port}{path}", body.encode(), args.ready_timeout, log
                        )
                except RuntimeError as exc:
                    failed.append(name)
                    print(f"{name}: {exc}", file=sys.stderr, flush=True)
                    continue
                for (path, _), body_file in zip(routes, bodies, strict=True):
                    url = f"http://127.0.0.1:{port}{path}"
                    if args.warmup > 0:
                        run_wrk(url, 8, args.warmup, args.threads, lua, body_file)
                    for conns in concurrency:
                        load1 = os.getloadavg()[0]
                        cpu = tree_cpu_seconds(proc.pid)
                        res = run_wrk(url, conns, args.duration, args.threads, lua, body_file)
                        cpu = tree_cpu_seconds(proc.pid) - cpu
                        row = {
                            "server": name,
                            "round": round_,
                            "route": path,
                            "concurrency": conns,
                            "load1": load1,
                            "server_cpu_ms": 1000 * cpu / max(res["requests"], 1),
                        }
                        rows.append({**row, **res})
                        print(
                            f"{round_} {path} {name:>18} c={conns:<3} {res['rps']:8.0f} req/s  "
                            f"p50 {res['p50_ms']:6.2f}  p99 {res['p99_ms']:7.2f}  "
                            f"max {res['max_ms']:7.1f} ms  "
                            f"errors {res['errors']}  CPU {row['server_cpu_ms']:.2f} ms/req  "
                            f"load {load1:.2f}",
                            file=sys.stderr,
                            flush=True,
                        )
            finally:
                stop_server(proc)

    md = table(rows, baseline)
    print(md)
    out = args.out or OUT / f"{stamp}.json"
    meta = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "duration_s": args.duration,
        "wrk_threads": args.threads,
        "servers": servers,
        "baseline": baseline,
        "routes": [path for path, _ in routes],
        "rounds": args.rounds,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows, "table": md}, indent=2))
    print(f"\nsaved {out}", file=sys.stderr)
    if failed:
        print(f"not measured (server did not start): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
