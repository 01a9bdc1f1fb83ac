"""The README's main job (``make demo``) works end to end: a real simulator process on loopback, the core
client authenticating, sending, receiving KSeF numbers and UPOs, and downloading purchases incrementally."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_sends_invoices_and_downloads_purchases_once():
    proc = subprocess.run(
        [sys.executable, "-m", "ksefnet_core.demo", "--invoices", "3", "--purchases", "12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    numbers = re.findall(r"KSeF number (\d{10}-\d{8}-[0-9A-F]{12}-[0-9A-F]{2})", out)
    assert len(numbers) == 3, out
    assert re.search(r"UPO [1-9]\d* bytes", out), out
    assert "Purchase download run 1: 12 new invoices" in out, out
    assert "Purchase download run 2: 0 new invoices" in out, out
