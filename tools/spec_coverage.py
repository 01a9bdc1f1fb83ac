#!/usr/bin/env python3
"""Write docs/spec-coverage.md: every operation of the KSeF API spec the project follows (the verbatim 2.7.0
document with the 2.7.1-2.9.0 changes, ksefnet_core/simulator/spec.py) against the simulator, the client and
the tests.

* **Simulator**: the simulator has a route for the operation (method and path template).
* **Client**: the ``KsefClient`` method(s) that call it, found in ``ksefnet_core/client.py``'s source.
* **Tests**: the test files in which the simulator *served* the operation during a run of the core test suite
  (``KSEFNET_SPEC_COVERAGE``, recorded by the ``simulator`` fixture); "client" when KSeFNet's client sent it
  (by its User-Agent), "direct" when a test sent it with plain HTTP.

Usage: ``python tools/spec_coverage.py`` (runs the core tests, about two minutes), or
``python tools/spec_coverage.py --from FILE`` with a file recorded earlier by
``KSEFNET_SPEC_COVERAGE=FILE python -m pytest ksefnet_core/tests``. ``--check`` exits 1 when an operation
lacks a simulator route, a client method or a test.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ksefnet_core.simulator import spec  # noqa: E402
from ksefnet_core.simulator.app import Simulator  # noqa: E402

OUTPUT = ROOT / "docs" / "spec-coverage.md"
CLIENT = ROOT / "ksefnet_core" / "client.py"
CALLS = {"request", "_continuation", "_offset_pages"}


def _path_text(node: ast.expr) -> str | None:
    """The path of a call argument: a string, or an f-string with ``{}`` for each placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)  # type: ignore[misc]
    return None


def client_calls() -> list[tuple[str, str, str]]:
    """(METHOD, path pattern, KsefClient method) for every API call in client.py."""
    tree = ast.parse(CLIENT.read_text(encoding="utf-8"))
    found = []
    for cls in tree.body:
        if not (isinstance(cls, ast.ClassDef) and cls.name == "KsefClient"):
            continue
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
                continue
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in CALLS
                    and len(node.args) >= 2
                    and isinstance(node.args[0], ast.Constant)
                ):
                    path = _path_text(node.args[1])
                    if path and path.startswith("/"):
                        found.append((str(node.args[0].value), path, fn.name))
    return found


def _matches(pattern: str, template: str) -> bool:
    """A client path (``{}`` for any value) against a spec template (``{name}`` for a parameter)."""
    target = re.sub(r"\{[^}]+\}", "{}", template)
    regex = "^" + ".+".join(re.escape(part) for part in pattern.split("{}")) + "$"
    return bool(re.match(regex, target))


def run_tests(record: Path) -> None:
    env = dict(os.environ, KSEFNET_SPEC_COVERAGE=str(record), PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(ROOT / "ksefnet_core" / "tests"),
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(f"the core tests failed (exit {result.returncode}); no table written")


def build(observed: dict) -> tuple[str, list[str]]:
    document = spec.load()
    routes = {(r.method, r.template) for r in Simulator().router.routes if r.prefix == "/v2"}
    calls = client_calls()
    rows, gaps = [], []
    for method, path, operation in spec.operations(document):
        in_sim = (method, path) in routes
        exact = re.sub(r"\{[^}]+\}", "{}", path)
        methods = sorted({name for m, p, name in calls if m == method and p.split("?")[0] == exact})
        if not methods:  # a client method building the path from a variable part (e.g. a grant's kind):
            loose = [(p, name) for m, p, name in calls if m == method and _matches(p, path)]
            longest = max((len(p.split("{}", 1)[0]) for p, _name in loose), default=0)  # the most specific
            methods = sorted({name for p, name in loose if len(p.split("{}", 1)[0]) == longest})
        seen = observed.get(f"{method} {path}") or {}
        tests = seen.get("tests") or []
        senders = seen.get("senders") or []
        limits = operation.get("x-rate-limits") or {}
        group = spec.rate_group(operation) or f"none ({limits.get('perSecond', '?')} req/s)"
        client_text = ", ".join(f"`{m}`" for m in methods) or "**no**"
        tests_text = ", ".join(tests) or "**none**"
        if senders:
            tests_text += " (" + ", ".join(senders) + ")"
        simulator_text = "yes" if in_sim else "**no**"
        rows.append(f"| `{method} {path}` | {group} | {simulator_text} | {client_text} | {tests_text} |")
        missing = [
            what for what, ok in (("simulator", in_sim), ("client", methods), ("tests", tests)) if not ok
        ]
        if missing:
            gaps.append(f"{method} {path}: no {', '.join(missing)}")
    total = len(rows)
    head = [
        "# KSeF API operations: simulator, client and tests",
        "",
        f"Generated by `tools/spec_coverage.py` from the spec the project follows ({spec.API_VERSION}: the verbatim",
        "2.7.0 document plus the documented 2.7.1-2.9.0 changes, `ksefnet_core/simulator/spec.py`). *Tests*: the",
        "test files in which the simulator served the operation during a run of the core suite, with who sent it",
        "(*client*: `KsefClient`; *direct*: plain HTTP in a test). Do not edit by hand; run the script again.",
        "",
        f"{total} operations; {total - len(gaps)} with a simulator route, a client method and tests"
        + (f"; gaps: {len(gaps)} (listed at the end)." if gaps else "; nothing missing."),
        "",
        "| Operation | Rate-limit group | Simulator | Client | Tests |",
        "| --- | --- | --- | --- | --- |",
    ]
    tail = ["", "## Gaps", "", *(f"- {g}" for g in gaps)] if gaps else []
    return "\n".join(head + rows + tail) + "\n", gaps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--from", dest="source", help="a coverage file recorded earlier (skip the test run)")
    parser.add_argument("--check", action="store_true", help="exit 1 when any operation has a gap")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args()
    if args.source:
        observed = json.loads(Path(args.source).read_text(encoding="utf-8"))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            record = Path(tmp) / "coverage.json"
            run_tests(record)
            observed = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    text, gaps = build(observed)
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"{args.output}: {len(gaps)} gaps")
    for gap in gaps:
        print("  ", gap)
    if args.check and gaps:
        sys.exit(1)


if __name__ == "__main__":
    main()
