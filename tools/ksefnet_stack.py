"""Start the whole stack for the demo, the end-to-end test and the benchmarks: the local KSeF simulator and
an Odoo 18 server with the KSeFNet addons on a fresh database, each as its own process.

Odoo is found at ``ODOO_PATH`` (default /opt/odoo); PostgreSQL at ``PGHOST``/``PGPORT`` as ``PGUSER``
(default 127.0.0.1:5432 as ksefnet, a role that may create databases; Odoo refuses the superuser).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
ODOO_PATH = Path(os.environ.get("ODOO_PATH", "/opt/odoo"))
PG = {
    "host": os.environ.get("PGHOST", "127.0.0.1"),
    "port": os.environ.get("PGPORT", "5432"),
    "user": os.environ.get("PGUSER", "ksefnet"),
}


def odoo_available() -> bool:
    return (ODOO_PATH / "odoo-bin").is_file() and (ODOO_PATH / "odoo").is_dir()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, proc.args[:4]))} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Simulator:
    """``python -m ksefnet_core.simulator`` on a free loopback port."""

    def __init__(
        self, *, rate_limits: bool = True, state: str | None = None, processing_delay: float = 0.0
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_base = self.base_url + "/v2"
        command = [sys.executable, "-m", "ksefnet_core.simulator", "--port", str(self.port)]
        if not rate_limits:
            command.append("--no-rate-limits")
        if processing_delay:
            command += ["--processing-delay", str(processing_delay)]
        if state:
            command += ["--state", state]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"{self.base_url}/_simulator/health", self.proc)

    def token(self, nip: str) -> str:
        """A KSeF token for ``nip`` (simulator-only helper; on KSeF you create it in KSeF)."""
        resp = requests.post(f"{self.base_url}/_simulator/tokens", json={"nip": nip}, timeout=30)
        resp.raise_for_status()
        return str(resp.json()["token"])

    def stop(self) -> None:
        stop(self.proc)


class Odoo:
    """A database with the given addons installed, then (``serve``) an Odoo server process on it."""

    def __init__(
        self, modules: str, *, workdir: Path, db: str | None = None, demo: bool = False, languages: str = ""
    ) -> None:
        self.db = db or f"ksefnet_{uuid.uuid4().hex[:8]}"
        self.log = workdir / "odoo.log"
        addons = ",".join(
            str(p) for p in (ODOO_PATH / "odoo" / "addons", ODOO_PATH / "addons", ROOT) if p.is_dir()
        )
        self.bin = [sys.executable, str(ODOO_PATH / "odoo-bin")]
        self.options = [
            f"--addons-path={addons}",
            "-d",
            self.db,
            f"--db_host={PG['host']}",
            f"--db_port={PG['port']}",
            f"--db_user={PG['user']}",
            f"--data-dir={workdir / 'odoo-data'}",
            f"--logfile={self.log}",
        ]
        self.proc: subprocess.Popen | None = None
        self.procs: list[subprocess.Popen] = []
        self.url = ""
        init = [*self.bin, *self.options, "-i", modules, "--stop-after-init", "--http-port=0"]
        if not demo:
            init.append("--without-demo=all")
        if languages:  # e.g. "pl_PL": installed with the addons' translations
            init.append(f"--load-language={languages}")
        subprocess.run(init, check=True, timeout=900)

    def shell(self, script: str) -> str:
        """Run Python in ``odoo-bin shell`` (``env`` is there; commit yourself); its standard output."""
        done = subprocess.run(
            [*self.bin, "shell", *self.options, "--no-http"],
            input=script,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"odoo shell failed: {done.stderr[-2000:]}")
        return done.stdout

    @contextlib.contextmanager
    def environment(self) -> Iterator[Any]:
        """An Odoo environment (superuser) on this database, in this process: for benchmarks that time the
        ORM itself. Commit with ``env.cr.commit()``; uncommitted work is rolled back at the end."""
        sys.path.insert(0, str(ODOO_PATH))
        import odoo
        from odoo import SUPERUSER_ID, api

        odoo.tools.config.parse_config([*self.options, "--log-level=warn"])
        registry = odoo.modules.registry.Registry(self.db)
        try:
            with registry.cursor() as cr:
                yield api.Environment(cr, SUPERUSER_ID, {})
                cr.rollback()
        finally:
            odoo.modules.registry.Registry.delete(self.db)
            odoo.sql_db.close_all()

    def serve(
        self,
        port: int | None = None,
        interface: str = "127.0.0.1",
        *,
        workers: int = 0,
        cron_threads: int = 1,
    ) -> str:
        """Start an Odoo server on this database (call again for another "host" on the same database);
        ``workers`` > 0 is Odoo's multi-process mode. Returns its URL (the first one stays in ``url``)."""
        port = port or free_port()
        options = [f"--http-port={port}", f"--http-interface={interface}", f"--max-cron-threads={cron_threads}",
                   f"--workers={workers}", f"--gevent-port={free_port()}", f"--db-filter=^{self.db}$"]  # fmt: skip
        # Odoo logs to its log file; its standard error (e.g. a thread's complaint at shutdown) goes beside it.
        proc = subprocess.Popen(
            [*self.bin, *self.options, *options],
            stderr=open(self.log.with_suffix(".stderr"), "ab"),  # noqa: SIM115 - owned by the process
        )
        self.procs.append(proc)
        self.proc = self.proc or proc
        url = f"http://127.0.0.1:{port}"
        self.url = self.url or url
        wait_http(f"{url}/web/health", proc)
        return url

    def drop(self) -> None:
        for proc in self.procs:
            stop(proc)
        self.drop_named(self.db)

    @staticmethod
    def drop_named(db: str) -> None:
        subprocess.run(
            ["dropdb", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "--if-exists", db],
            check=False,
            capture_output=True,
        )
