"""Polling a KSeF operation (authentication, export) until its status is final."""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import KsefOperationFailed, KsefStillInProgress


def status_text(status: dict) -> str:
    """``description (detail; detail)`` of a KSeF ``status`` object."""
    details = status.get("details")
    return status.get("description", "") + (f" ({'; '.join(details)})" if details else "")


def poll_until_final(
    fetch: Callable[[], dict],
    *,
    what: str,
    reference_number: str,
    is_failure: Callable[[int], bool],
    failure: Callable[[int, dict], Exception],
    timeout: float,
    poll_interval: float,
    max_delay: float,
) -> dict:
    """Call ``fetch()`` (an answer with ``status.code``) until the code is 200 and return that answer.

    A failure code raises ``failure(code, status)``; still running after ``timeout`` raises
    :class:`~ksefnet_core.errors.KsefStillInProgress` (transient: poll again later). The
    delay between calls grows from ``poll_interval`` by half each time, up to ``max_delay``.
    """
    deadline = time.monotonic() + timeout
    delay = poll_interval
    while True:
        answer = fetch()
        code = int(answer["status"]["code"])
        if code == 200:
            return answer
        if is_failure(code):
            raise failure(code, answer["status"])
        if time.monotonic() + delay > deadline:
            raise KsefStillInProgress(
                f"{what} still in progress after {timeout:.0f} s (status {code})",
                reference_number=reference_number,
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max_delay)


def wait_for_operation(
    fetch: Callable[[], dict],
    *,
    what: str,
    reference_number: str,
    fails_from: int = 300,
    timeout: float,
    poll_interval: float,
    max_delay: float,
) -> dict:
    """:func:`poll_until_final` for an asynchronous operation (export, certificate enrollment, permission
    grant): a code of ``fails_from`` or more raises :class:`~ksefnet_core.errors.KsefOperationFailed`."""
    return poll_until_final(
        fetch,
        what=what,
        reference_number=reference_number,
        is_failure=lambda code: code >= fails_from,
        failure=lambda code, st: KsefOperationFailed(
            f"{what} ended with {code}: {status_text(st)}",
            status_code=code,
            reference_number=reference_number,
            ksef_text=status_text(st),
        ),
        timeout=timeout,
        poll_interval=poll_interval,
        max_delay=max_delay,
    )
