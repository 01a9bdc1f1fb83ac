"""The failure table: every engine path asks it what a KSeF answer means (no HTTP needed: it is pure data)."""

import pytest

from ksefnet_core import outcomes
from ksefnet_core.errors import (
    ErrorDetail,
    KsefAuthenticationFailed,
    KsefBadRequest,
    KsefForbidden,
    KsefGone,
    KsefOperationFailed,
    KsefProtocolError,
    KsefRateLimited,
    KsefServerError,
    KsefStillInProgress,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
)
from ksefnet_core.throttle import ThrottleDeferred


def bad_request(code):
    return KsefBadRequest("bad", http_status=400, errors=[ErrorDetail(code=code, description="x")])


@pytest.mark.parametrize(
    ("exc", "send", "read"),
    [
        (ThrottleDeferred("invoiceSend", 12.0), outcomes.Outcome("throttled", 12.0), None),
        (KsefRateLimited("429", retry_after=7), outcomes.Outcome("throttled", 7), None),
        (KsefRateLimited("429"), outcomes.Outcome("throttled", 60.0), None),
        # a request that left without an answer may have been processed: ambiguous only when it changed something
        (KsefTimeoutError("timeout"), outcomes.Outcome("ambiguous"), outcomes.Outcome("transient")),
        (
            KsefServerError("503", http_status=503),
            outcomes.Outcome("ambiguous", 30.0),
            outcomes.Outcome("transient", 30.0),
        ),
        (KsefProtocolError("html"), outcomes.Outcome("ambiguous", 30.0), outcomes.Outcome("transient", 30.0)),
        (KsefTransportError("refused"), outcomes.Outcome("transient"), None),
        (KsefUnauthorized("401"), outcomes.Outcome("auth"), None),
        (KsefForbidden("403"), outcomes.Outcome("auth"), None),
        (KsefAuthenticationFailed("x", status_code=550), outcomes.Outcome("transient"), None),
        (KsefAuthenticationFailed("x", status_code=450), outcomes.Outcome("auth"), None),
        (KsefGone("410"), outcomes.Outcome("permanent"), None),
        (KsefOperationFailed("x", status_code=445), outcomes.Outcome("permanent"), None),
        (KsefStillInProgress("later"), outcomes.Outcome("transient"), None),
        (bad_request(21173), outcomes.Outcome("session"), None),
        (bad_request(21184), outcomes.Outcome("session"), None),
        (bad_request(21178), outcomes.Outcome("transient"), None),
        (bad_request(21405), outcomes.Outcome("permanent"), None),  # a wrong request stays wrong
        (ValueError("not ours"), outcomes.Outcome("permanent"), None),
    ],
)
def test_each_failure_has_one_meaning(exc, send, read):
    assert outcomes.classify(exc, outcomes.SEND) == send
    assert outcomes.classify(exc, outcomes.READ) == (read or send)


def test_a_known_code_among_several_decides():
    exc = KsefBadRequest(
        "bad", errors=[ErrorDetail(code=21405, description="x"), ErrorDetail(code=21155, description="y")]
    )
    assert outcomes.classify(exc).kind == "session"


def test_retriable_means_no_person_needs_to_act():
    assert {k for k in outcomes.KINDS if outcomes.Outcome(k).retriable} == {
        "throttled",
        "ambiguous",
        "transient",
        "session",
    }


@pytest.mark.parametrize(
    ("code", "kind"),
    [(100, "processing"), (150, "processing"), (120, "processing"), (200, "accepted"), (440, "duplicate"),
     (450, "rejected"), (405, "cancelled"), (550, "cancelled"), (499, "rejected")],
)  # fmt: skip
def test_invoice_status_codes(code, kind):
    assert outcomes.invoice_outcome(code) == kind
