"""Granting and revoking KSeF permissions and waiting for KSeF to apply them (uprawnienia.md).

Grants and revocations are asynchronous operations: :func:`grant` and :func:`revoke` send the request and poll
``GET /permissions/operations/{ref}`` until it is final, raising
:class:`~ksefnet_core.errors.KsefOperationFailed` with KSeF's status code and details when it failed.
"""

from __future__ import annotations

from .client import KsefClient
from .polling import wait_for_operation as _wait


def wait_for_operation(
    client: KsefClient, reference_number: str, *, timeout: float = 60.0, poll_interval: float = 0.5
) -> dict:
    """Poll a permission operation until it is final; its status answer (code 200)."""
    return _wait(
        lambda: client.permission_operation_status(reference_number),
        what=f"permission operation {reference_number}",
        reference_number=reference_number,
        timeout=timeout,
        poll_interval=poll_interval,
        max_delay=5.0,
    )


def grant(
    client: KsefClient, kind: str, body: dict, *, timeout: float = 60.0, poll_interval: float = 0.5
) -> str:
    """Grant permissions (``kind``: persons, entities, authorizations, indirect, subunits, eu-entities,
    eu-entities/administration) and wait until KSeF applied them; the operation's reference number."""
    reference = client.grant_permissions(kind, body)
    wait_for_operation(client, reference, timeout=timeout, poll_interval=poll_interval)
    return reference


def revoke(
    client: KsefClient,
    permission_id: str,
    *,
    authorization: bool = False,
    timeout: float = 60.0,
    poll_interval: float = 0.5,
) -> str:
    """Revoke one permission by its id (from a query) and wait until KSeF applied it."""
    reference = client.revoke_permission(permission_id, authorization=authorization)
    wait_for_operation(client, reference, timeout=timeout, poll_interval=poll_interval)
    return reference
