"""The specification the simulator and the conformance checks follow: the verbatim 2.7.0 document (unchanged,
by its hash) with each documented 2.7.1-2.9.0 change applied by ksefnet_core/simulator/spec.py."""

from __future__ import annotations

import hashlib

from ksefnet_core.simulator import spec

VERBATIM_SHA256 = "4ad48436280be6226eba686b85445c7f1cd1f553c73fe4bb373f3aa09baf2708"


def test_the_shipped_document_is_the_verbatim_2_7_0():
    assert hashlib.sha256(spec.SPEC_FILE.read_bytes()).hexdigest() == VERBATIM_SHA256
    assert "2.7.0" in spec.verbatim()["info"]["description"]


def test_every_patch_is_applied_and_the_result_is_a_valid_openapi_document():
    from openapi_spec_validator import validate

    doc = spec.load()
    validate(doc)
    schemas = doc["components"]["schemas"]
    paths = doc["paths"]
    assert "/collective-identifiers/{collectiveIdentifierNumber}/invoices" not in paths  # 2.7.1
    assert "post" in paths["/collective-identifiers/invoices"]
    assert (
        schemas["CollectiveIdentifierInvoicesQueryRequest"]["properties"]["collectiveIdentifierNumbers"][
            "maxItems"
        ]
        == 10
    )
    for group in ("onlineSessionClose", "batchSessionClose", "anonymous", "global"):  # 2.8.0
        assert group in schemas["EffectiveApiRateLimits"]["required"]
    close = paths["/sessions/online/{referenceNumber}/close"]["post"]
    assert spec.rate_group(close) == "onlineSessionClose" and close["x-rate-limits"]["perHour"] == 240
    assert spec.rate_group(paths["/sessions/batch/{referenceNumber}/close"]["post"]) == "batchSessionClose"
    assert (
        "21184"
        in paths["/sessions/online/{referenceNumber}/invoices"]["post"]["responses"]["400"]["description"]
    )
    assert {"CNH", "VED", "XTS", "ZWG", "SLE"} <= set(schemas["CurrencyCode"]["enum"])  # 2.8.1
    assert "timestamp" not in schemas["ForbiddenProblemDetails"]["required"]
    assert "CollectiveIdentifierManage" in schemas["EntityPermissionType"]["enum"]
    assert "CollectiveIdentifierManage" in schemas["IndirectPermissionType"]["enum"]
    assert "compressionType" in schemas["InvoicePackage"]["required"]  # 2.9.0
    assert "collectiveIdentifier" in schemas["EffectiveContextLimits"]["required"]
    assert "collectiveIdentifier" in schemas["SetSessionLimitsRequest"]["required"]
    assert "ownerPermissions" in schemas["PersonalPermissionsQueryRequest"]["properties"]
    assert "authenticationMethod" not in schemas["AuthenticationOperationStatusResponse"]["required"]
    assert spec.API_VERSION in doc["info"]["description"]
    assert sum(1 for _ in spec.operations(doc)) == 83


def test_load_gives_independent_copies():
    first = spec.load()
    first["paths"].clear()
    assert spec.load()["paths"]


def test_authentication_answers_name_the_method_in_authentication_method_info_only(simulator):
    """authenticationMethod is gone since 2026-11-16 (changelog 2.1.0): the simulator no longer sends it."""
    from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token

    from .client_support import mint_token, new_client

    client = new_client(simulator)
    result = authenticate_with_ksef_token(
        client, mint_token(simulator), ContextIdentifier.nip("5265877635"), poll_interval=0.02
    )
    assert result.method == {"category": "Token", "code": "token.ksef", "displayName": "Token KSeF"}
    sessions = list(client.auth_sessions())
    assert sessions and all(
        "authenticationMethod" not in s and s["authenticationMethodInfo"] for s in sessions
    )
