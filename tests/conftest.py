"""Shared fixtures: services (PostgreSQL, Chromium), the Prefect test harness, small workspaces.

Tests that need PostgreSQL or Chromium skip with a reason where the service is absent; CI sets
``MICROGRADE_REQUIRE_SERVICES=1`` (``.ci/run``), which turns those skips into failures.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

# a shared local Prefect API started by a test's command stops soon after it (the default waits 10 minutes)
os.environ.setdefault("MICROGRADE_PREFECT_IDLE_S", "20")

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
POSTGRES_ADMIN_URL = os.environ.get("MICROGRADE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHROMIUM = os.environ.get("MICROGRADE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def services_required() -> bool:
    return os.environ.get("MICROGRADE_REQUIRE_SERVICES") == "1"


def missing_service(reason: str) -> None:
    """Skip (locally) or fail (in CI, where the service must be present)."""
    if services_required():
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing_service(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_service("the playwright Python package is not installed")
    return CHROMIUM


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        missing_service(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {type(exc).__name__}")
    name = f"mg_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        for attempt in range(60):  # a test may have restarted the server: wait until it is back
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except Exception:  # noqa: BLE001 - retried, then raised
                if attempt == 59:
                    raise
                time.sleep(0.5)
        admin.dispose()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect test harness (temporary SQLite API database) for the whole session."""
    from micrograde.flows.runtime import configure_prefect

    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    configure_prefect()
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        with get_client(sync_client=True) as client:
            url = str(client.api_url).rstrip("/")
        # commands run in these tests (and their child processes) use the harness's server, as
        # they would use a facility's PREFECT_API_URL, instead of starting the shared local one
        os.environ["PREFECT_API_URL"] = url
        try:
            yield
        finally:
            os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture
def real_micrograph() -> Path:
    path = REAL_DATA / "Ucsf_stack_1142_DW.mrc"
    if not path.is_file():
        pytest.skip(f"real data folder absent: {REAL_DATA}")
    return path


@pytest.fixture
def workspace(tmp_path):
    from micrograde.pipeline.catalogue.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def sim_collection(tmp_path_factory):
    """A small simulated multi-session collection (files + truth.csv), shared read-only."""
    from micrograde.pipeline.sim.files import write_collection

    out = tmp_path_factory.mktemp("sim")
    truth = write_collection(out, 18, seed=7)
    return out, truth


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
