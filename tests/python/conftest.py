"""Fixtures that run the real `tollgate-sim` binary for the Python integration tests.

The binary is `$TOLLGATE_SIM_BIN`, or `target/debug/tollgate-sim` under the repository
root (build it first: `cargo build -p tollgate-sim`). Each instance is started on
`--port 0`; the fixture reads the `tollgate-sim listening on http://HOST:PORT` line and
kills the process at the end.
"""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("TOLLGATE_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TOLLGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
MODEL = "facebook/opt-125m"
LISTENING = "tollgate-sim listening on "


def sim_binary() -> Path:
    path = Path(os.environ.get("TOLLGATE_SIM_BIN", REPO_ROOT / "target" / "debug" / "tollgate-sim"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        pytest.exit(f"tollgate-sim binary not found at {path}; run `cargo build -p tollgate-sim` "
                    "or set TOLLGATE_SIM_BIN", returncode=2)
    return path


@dataclass
class Sim:
    process: subprocess.Popen
    url: str

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="EMPTY", max_retries=0, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def start_sim(*args: str, timeout: float = 10.0, port: int = 0) -> Sim:
    """Starts the binary with `args` (MODEL first) on `port` (default: a random local port)."""
    proc = subprocess.Popen(
        [str(sim_binary()), *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].startswith(LISTENING):
        proc.kill()
        raise RuntimeError(f"tollgate-sim did not start: {line!r}")
    return Sim(process=proc, url=line[0][len(LISTENING):].strip())


@pytest.fixture(scope="session")
def sim() -> Iterator[Sim]:
    """A zero-latency simulator with LoRA enabled and a 512-token context."""
    s = start_sim(MODEL, "--enable-lora", "--max-model-len", "512", "--sim-zero-latency")
    yield s
    s.stop()


@pytest.fixture
def client(sim: Sim) -> openai.OpenAI:
    return sim.client()


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., Sim]]:
    """Starts extra simulators with custom flags; all are killed after the test."""
    started: list[Sim] = []

    def factory(*args: str) -> Sim:
        s = start_sim(*args)
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


def psql(sql: str) -> None:
    subprocess.run(["psql", POSTGRES, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True)


@dataclass
class Database:
    name: str

    @property
    def url(self) -> str:
        return POSTGRES.rsplit("/", 1)[0] + f"/{self.name}"


@pytest.fixture
def database() -> Iterator[Database]:
    """A fresh PostgreSQL database for one test, dropped after it."""
    db = Database(f"tg_py_{uuid.uuid4().hex[:12]}")
    psql(f"CREATE DATABASE {db.name}")
    yield db
    psql(f"DROP DATABASE IF EXISTS {db.name} WITH (FORCE)")
