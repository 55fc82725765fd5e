"""Benchmark of the labelling web app.

1. Annotations per second stored with N concurrent labellers (default 8), each logged in as its
   own annotator and posting labels over HTTP, on SQLite and on PostgreSQL.
2. Time to the next micrograph: after a label key, the page posts the label and loads the next
   micrograph's details, image and power spectrum. "cold": all sequential, nothing prefetched,
   server caches cold (an upper bound). "prefetched": as the page works, the next micrograph's
   images were fetched while the current one was shown, so label + details remain.

Micrographs are K3-sized (5760 x 4092) with their display arrays precomputed as ingest stores
them (512-px thumbnail keeping the aspect, 256 x 256 spectrum). The server runs in its own
process (pinned with ``taskset`` to ``--server-cpus``, default 0,1 = "2 cores").

    python bench/bench_labeling.py                     # SQLite and PostgreSQL (if reachable)
    python bench/bench_labeling.py --backend sqlite --labellers 8 --per-labeller 50

Results: printed, and written to bench/results/labeling-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from micrograde.labeling import store
from micrograde.pipeline.catalogue.cache import save_entry
from micrograde.pipeline.catalogue.schema import Annotation, Micrograph, SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
K3 = (4092, 5760)


def populate(ws: Workspace, n: int) -> list[int]:
    rng = np.random.default_rng(0)
    th, tw = round(512 * K3[0] / K3[1]), 512
    ids = []
    with ws.transaction() as s:
        sess = SessionRow(name="bench-k3", detector="K3")
        s.add(sess)
        s.flush()
        for i in range(n):
            key = uuid.uuid4().hex
            save_entry(
                ws.cache_dir, key,
                thumbnail=rng.integers(0, 256, (th, tw), dtype=np.uint8),
                spectrum=rng.random((256, 256), dtype=np.float32),
                image=rng.standard_normal((256, 256)).astype(np.float32),
                radial=np.zeros(128, np.float32), radial_freq=np.linspace(0, 0.31, 128, dtype=np.float32),
            )
            m = Micrograph(path=f"/bench/k3/mic_{i:05d}.mrc", name=f"mic_{i:05d}.mrc", session_id=sess.id,
                           digest=uuid.uuid4().hex, size_bytes=K3[0] * K3[1] * 4, shape_y=K3[0], shape_x=K3[1],
                           mode="float32", pixel_size=0.83, pixel_size_source="header", cache_key=key,
                           features={"ice_ring_score": 0.1, "thon_reach_A": 4.0, "anisotropy": 0.02, "contrast": 1.0,
                                     "dark_fraction": 0.0})
            s.add(m)
            s.flush()
            ids.append(m.id)
    return ids


def start_server(root: Path, db_url: str | None, port: int, cpus: str | None) -> subprocess.Popen:
    code = (
        "import sys, uvicorn\n"
        "from micrograde.pipeline.catalogue.workspace import Workspace\n"
        "from micrograde.labeling.web.app import create_app\n"
        "ws = Workspace.open(sys.argv[1], sys.argv[2] or None)\n"
        "uvicorn.run(create_app(ws), host='127.0.0.1', port=int(sys.argv[3]), log_level='warning')\n"
    )
    cmd = [sys.executable, "-c", code, str(root), db_url or "", str(port)]
    if cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpus, *cmd]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def login(base: str, token: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=base, timeout=30)
    c.get("/")
    r = c.post("/api/login", json={"token": token}, headers={"X-CSRF-Token": c.cookies["mg_login_csrf"]})
    r.raise_for_status()
    return c, r.json()["csrf"]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def bench_backend(name: str, db_url: str | None, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"mg-bench-{name}-"))
    ws = Workspace.open(tmp / "ws", db_url)
    n_mics = max(args.per_labeller, 2 * args.next_samples + 1)
    ids = populate(ws, n_mics)
    tokens = [store.add_annotator(ws, f"labeller{k}", "grad")[1] for k in range(args.labellers)]
    _, probe_token = store.add_annotator(ws, "probe", "postdoc")
    port = 8600 + os.getpid() % 300
    proc = start_server(ws.root, db_url, port, args.server_cpus)
    base = f"http://127.0.0.1:{port}"
    try:
        clients = [login(base, t) for t in tokens]
        latencies: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.labellers + 1)

        def labeller(k: int) -> None:
            c, csrf = clients[k]
            mine = []
            barrier.wait()
            for j in range(args.per_labeller):
                t0 = time.perf_counter()
                r = c.post(
                    f"/api/micrographs/{ids[j]}/annotations",
                    json={"label": ("good", "medium", "bad")[(j + k) % 3]},
                    headers={"X-CSRF-Token": csrf},
                )
                r.raise_for_status()
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=labeller, args=(k,)) for k in range(args.labellers)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        with ws.session() as s:
            stored = s.query(Annotation).count()
        expected = args.labellers * args.per_labeller

        probe, csrf = login(base, probe_token)
        next_ms, fetch_ms, warm_ms = [], [], []
        for j in range(args.next_samples):
            # cold: nothing prefetched; every request of the next micrograph is timed
            t0 = time.perf_counter()
            probe.post(f"/api/micrographs/{ids[j]}/annotations", json={"label": "good"},
                       headers={"X-CSRF-Token": csrf}).raise_for_status()
            t1 = time.perf_counter()
            nxt = ids[j + 1]
            probe.get(f"/api/micrographs/{nxt}").raise_for_status()
            probe.get(f"/api/micrographs/{nxt}/image.png?low={1 + j % 3}&high=99").raise_for_status()
            probe.get(f"/api/micrographs/{nxt}/spectrum.png").raise_for_status()
            t2 = time.perf_counter()
            next_ms.append((t2 - t0) * 1000)
            fetch_ms.append((t2 - t1) * 1000)
        for j in range(args.next_samples, 2 * args.next_samples):
            # as the page does it: the next micrograph's images were prefetched while the current
            # one was shown, so the browser cache serves them; label + details remain
            nxt = ids[j + 1]
            probe.get(f"/api/micrographs/{nxt}/image.png?low=1&high=99").raise_for_status()
            probe.get(f"/api/micrographs/{nxt}/spectrum.png").raise_for_status()
            t0 = time.perf_counter()
            probe.post(f"/api/micrographs/{ids[j]}/annotations", json={"label": "bad"},
                       headers={"X-CSRF-Token": csrf}).raise_for_status()
            probe.get(f"/api/micrographs/{nxt}").raise_for_status()
            warm_ms.append((time.perf_counter() - t0) * 1000)
        for c, _ in clients:
            c.close()
        probe.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        ws.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "backend": name,
        "labellers": args.labellers,
        "annotations": expected,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "annotations_per_s": round(expected / elapsed, 1),
        "post_latency_ms_p50": round(pct(latencies, 50) * 1000, 1),
        "post_latency_ms_p95": round(pct(latencies, 95) * 1000, 1),
        "next_micrograph_ms_p50": round(statistics.median(next_ms), 1),
        "next_micrograph_ms_p95": round(pct(next_ms, 95), 1),
        "fetch_only_ms_p50": round(statistics.median(fetch_ms), 1),
        "next_micrograph_prefetched_ms_p50": round(statistics.median(warm_ms), 1),
        "next_micrograph_prefetched_ms_p95": round(pct(warm_ms, 95), 1),
    }


def pg_database() -> tuple[str, callable] | None:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL not reachable, skipped: {exc}", file=sys.stderr)
        return None
    name = f"mg_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--labellers", type=int, default=8)
    p.add_argument("--per-labeller", type=int, default=50)
    p.add_argument("--next-samples", type=int, default=40)
    p.add_argument("--server-cpus", default="0,1", help="CPUs the server is pinned to (taskset); '' for none")
    args = p.parse_args()
    results = []
    if args.backend in ("sqlite", "both"):
        results.append(bench_backend("sqlite", None, args))
    if args.backend in ("postgresql", "both"):
        pg = pg_database()
        if pg:
            url, drop = pg
            try:
                results.append(bench_backend("postgresql", url, args))
            finally:
                drop()
    for r in results:
        print(json.dumps(r))
    out = Path(__file__).parent / "results" / f"labeling-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
