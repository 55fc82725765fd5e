"""Which Prefect API a command's flows talk to, and the local one that successive commands share.

Every command that runs a flow needs a Prefect API. In order:

1. ``PREFECT_API_URL`` is set (a facility's Prefect server): it is used, nothing is started.
2. ``MICROGRADE_PREFECT_API=private``: Prefect's own behaviour, a private server started by this
   process and stopped with it (about 9 s per command on 2 cores).
3. Otherwise (``shared``, the default): one local API server per ``PREFECT_HOME`` (the workspace's
   ``.prefect/`` unless set), started by the first command that needs it, reused by the following
   ones, and stopped once no command has used it for ``MICROGRADE_PREFECT_IDLE_S`` seconds (600).
   Only the first command of a session waits for it to start; the others pay nothing. A command
   calls :func:`start_shared_api` as soon as its cheap checks pass, so the server starts while
   the command imports its modules and checks its inputs; :func:`prefect_api` then waits for it.

The shared server is Prefect's own API application (``prefect.server.api.server:create_app``) run
by uvicorn in its own process session, with the services of Prefect's ephemeral mode (no UI, no
scheduler: a command runs its flow in process and needs none). Coordination is through files in
``PREFECT_HOME``:

* ``micrograde-api.json``: url, pid and Prefect version of the running server (``starting`` while it
  has not answered yet);
* ``micrograde-api.lock``: held exclusively while a command checks, or starts, the server;
* ``micrograde-api.users``: every command holds a shared lock on it while it runs; the server stops
  itself only when it can take it exclusively and has been idle for the idle time.

They are ``flock`` locks, which the kernel drops when a process dies (``kill -9`` included): a
crashed command never keeps the server alive, and a server that died (its pid is gone, or
``/health`` does not answer) is replaced by the next command.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "API_MODE_ENV",
    "IDLE_ENV",
    "DEFAULT_IDLE_S",
    "prefect_api",
    "start_shared_api",
    "api_mode",
    "shared_api_state",
    "stop_shared_api",
    "wait_until_healthy",
    "free_port",
]

API_MODE_ENV = "MICROGRADE_PREFECT_API"
IDLE_ENV = "MICROGRADE_PREFECT_IDLE_S"
DEFAULT_IDLE_S = 600.0
STATE_FILE = "micrograde-api.json"
START_LOCK = "micrograde-api.lock"
USERS_LOCK = "micrograde-api.users"
LOG_FILE = "micrograde-api.log"
_MODES = ("shared", "private")


def api_mode() -> str:
    """``facility`` (PREFECT_API_URL set), ``private`` or ``shared`` (see the module docstring)."""
    if os.environ.get("PREFECT_API_URL"):
        return "facility"
    mode = os.environ.get(API_MODE_ENV, "shared").strip().lower() or "shared"
    if mode not in _MODES:
        raise ValueError(f"{API_MODE_ENV} must be one of {', '.join(_MODES)}, not {mode!r}")
    return mode


def idle_seconds() -> float:
    value = os.environ.get(IDLE_ENV)
    try:
        idle = float(value) if value else DEFAULT_IDLE_S
    except ValueError as exc:
        raise ValueError(f"{IDLE_ENV} must be a number of seconds, not {value!r}") from exc
    if idle <= 0:
        raise ValueError(f"{IDLE_ENV} must be positive, not {value!r}")
    return idle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_healthy(alive, url: str, timeout_s: float) -> bool:
    """Wait until ``url`` answers ``/health``: True, or False once ``alive()`` says the server exited or on time-out."""
    deadline = time.monotonic() + timeout_s
    while not _healthy(url, timeout=2.0):
        if not alive() or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def wait_until_healthy(proc: subprocess.Popen, url: str, timeout_s: float, log_path: str | Path | None) -> None:
    """Wait until the server process answers ``/health``; RuntimeError if it exits or times out."""
    if _wait_healthy(lambda: proc.poll() is None, url, timeout_s):
        return
    if proc.poll() is not None:
        raise RuntimeError(f"the local Prefect server exited with code {proc.returncode} (log: {log_path})")
    raise RuntimeError(f"the local Prefect server did not start within {timeout_s:.0f} s (log: {log_path})")


def _startup_timeout() -> float:
    return float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 90)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the pid
        return False
    return True


def _prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def shared_api_state(home: str | Path) -> dict | None:
    """The recorded shared server of ``home`` (url, pid, version, started_at), or None."""
    path = Path(home) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _is_live(state: dict | None) -> bool:
    """Whether a recorded server's process lives and runs this Prefect version (started or starting)."""
    if not state:
        return False
    return _pid_alive(int(state.get("pid", 0))) and state.get("prefect") == _prefect_version()


def _running_url(home: Path) -> str | None:
    """The URL of a live, healthy shared server of the same Prefect version (one still starting is waited
    for); a stale one is stopped."""
    state = shared_api_state(home)
    if state and _is_live(state):
        url = str(state.get("url", ""))
        if not state.get("starting"):
            if _healthy(url):
                return url
        elif _wait_healthy(lambda: _pid_alive(int(state["pid"])), url, _startup_timeout()):
            _write_state(home, {k: v for k, v in state.items() if k != "starting"})
            return url
    pid = int((state or {}).get("pid", 0))
    if pid and _pid_alive(pid):  # hung, never started or from another Prefect version: replace it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    (home / STATE_FILE).unlink(missing_ok=True)
    return None


def _write_state(home: Path, state: dict) -> None:
    from micrograde.pipeline.io.atomic import atomic_write_text

    atomic_write_text(home / STATE_FILE, json.dumps(state) + "\n")


def _spawn(home: Path) -> tuple[subprocess.Popen, dict]:
    """Start a server process on a free port and record it as starting (its caller holds the start lock);
    returns the process and its record (without ``starting``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    cmd = [sys.executable, "-m", "micrograde.flows.prefect_api", "--home", str(home), "--port", str(port),
           "--idle", str(idle_seconds())]
    with open(home / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=_server_env())
    state = {"url": url, "pid": proc.pid, "prefect": _prefect_version(),
             "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    _write_state(home, {**state, "starting": True})
    return proc, state


def _start_shared(home: Path, attempts: int = 3) -> str:
    log_path = home / LOG_FILE
    for attempt in range(attempts):
        proc, state = _spawn(home)
        url = str(state["url"])
        if attempt == 0:
            import prefect.main  # noqa: F401 - what the command imports next, while the server starts
        try:
            wait_until_healthy(proc, url, _startup_timeout(), log_path)
        except RuntimeError:
            if proc.poll() is None:
                proc.kill()
            (home / STATE_FILE).unlink(missing_ok=True)
            if attempt == attempts - 1:
                raise
            continue  # most likely the port was taken meanwhile
        _write_state(home, state)
        return url
    raise AssertionError("unreachable")


def start_shared_api(home: str | Path) -> bool:
    """Start the shared server of ``home`` in the background when none runs or starts, without waiting.

    A command calls it once its cheap checks have passed, so that the server starts while the command
    imports its modules and checks its inputs; :func:`prefect_api` waits for it. Nothing happens with
    a facility's ``PREFECT_API_URL`` or in private mode. Returns True when it started one (a command
    that then stops on a bad input stops it again: :func:`stop_shared_api`).
    """
    if api_mode() != "shared":
        return False
    home = Path(home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    # the users lock waits while a server is stopping
    with _flock(home / USERS_LOCK, fcntl.LOCK_SH), _flock(home / START_LOCK, fcntl.LOCK_EX):
        if _is_live(shared_api_state(home)):
            return False
        (home / STATE_FILE).unlink(missing_ok=True)
        _spawn(home)
        return True


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"PREFECT__SERVER_EPHEMERAL": "1", "PREFECT_UI_ENABLED": "0", "PREFECT_SERVER_UI_ENABLED": "false"})
    return env


@contextlib.contextmanager
def _flock(path: Path, kind: int) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, kind)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def prefect_api(home: str | Path) -> Iterator[str | None]:
    """Point this process's Prefect at an API for the block; yields its URL (None: Prefect's private one).

    See the module docstring for the order. ``home`` is ``PREFECT_HOME``.
    """
    mode = api_mode()
    if mode == "facility":
        yield os.environ["PREFECT_API_URL"]
        return
    if mode == "private":
        yield None
        return
    home = Path(home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    with _flock(home / USERS_LOCK, fcntl.LOCK_SH):  # waits while a server is stopping
        with _flock(home / START_LOCK, fcntl.LOCK_EX):
            url = _running_url(home) or _start_shared(home)
        os.environ["PREFECT_API_URL"] = url
        try:
            with _local_settings(url):
                yield url
        finally:
            os.environ.pop("PREFECT_API_URL", None)


@contextlib.contextmanager
def _local_settings(url: str) -> Iterator[None]:
    """Prefect settings for the shared local API (Prefect is imported here, the command needs it next).

    The URL (Prefect reads its settings once, when imported: a process that imported it earlier gets
    it too) and no flow-run heartbeats: they feed a server's crashed-run automations, which the
    local API does not run, and each flow run waits up to a second at its end for the heartbeat
    thread to stop.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def stop_shared_api(home: str | Path, timeout_s: float = 30.0) -> bool:
    """Stop the shared server of ``home`` now (True when one was running)."""
    home = Path(home).expanduser().resolve()
    state = shared_api_state(home)
    if not state or not _pid_alive(int(state.get("pid", 0))):
        (home / STATE_FILE).unlink(missing_ok=True)
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    (home / STATE_FILE).unlink(missing_ok=True)
    return True


# -- the server process --------------------------------------------------------------------------
def _stop_when_idle(server, home: Path, idle_s: float, poll_s: float = 1.0) -> None:
    """Stop ``server`` once no command holds the users lock and none has for ``idle_s`` seconds.

    The exclusive lock is kept while the server stops, so a command that arrives meanwhile waits
    and then starts a new server instead of talking to a dying one.
    """
    fd = os.open(home / USERS_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    last_used = time.monotonic()
    while not server.should_exit:
        time.sleep(poll_s)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            last_used = time.monotonic()
            continue
        if time.monotonic() - last_used >= idle_s:
            state = shared_api_state(home)
            if state and int(state.get("pid", 0)) == os.getpid():
                (home / STATE_FILE).unlink(missing_ok=True)
            server.should_exit = True
            return
        fcntl.flock(fd, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    """``python -m micrograde.flows.prefect_api --home H --port P --idle S``: the shared server process."""
    parser = argparse.ArgumentParser(prog="python -m micrograde.flows.prefect_api", description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_S)
    args = parser.parse_args(argv)

    import uvicorn

    config = uvicorn.Config("prefect.server.api.server:create_app", factory=True, host="127.0.0.1",
                            port=args.port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    threading.Thread(target=_stop_when_idle, args=(server, args.home, args.idle), daemon=True).start()
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
