"""Permissions end to end (client, ``ksefnet_core.permissions`` and the simulator over HTTP; conformance on):
grants of every kind, what they allow (authenticating, sending another seller's invoices), queries,
revocations, operation statuses (failures, 30-day retention), subject roles, and the Peppol providers."""

from __future__ import annotations

import pytest

from ksefnet_core import permissions
from ksefnet_core.auth import ContextIdentifier, authenticate_with_certificate
from ksefnet_core.certificates import CertificateKind, generate_test_credential
from ksefnet_core.errors import (
    KsefAuthenticationFailed,
    KsefBadRequest,
    KsefForbidden,
    KsefGone,
    KsefOperationFailed,
)
from ksefnet_core.sessions import OnlineSession

from .client_support import COMPANY, NIP, PESEL, control, invoice, new_client, post_testdata, token_client

OFFICE = "7010000005"  # an accounting office
PERSON = {
    "subjectDetailsType": "PersonByIdentifier",
    "personById": {"firstName": "Jan", "lastName": "Kowalski"},
}


def person_grant(permissions_: list[str], pesel: str = PESEL) -> dict:
    return {
        "subjectIdentifier": {"type": "Pesel", "value": pesel},
        "permissions": permissions_,
        "description": "Księgowa w sklepie",
        "subjectDetails": PERSON,
    }


def pesel_login(simulator, context: str = COMPANY):
    cred = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL)
    client = new_client(simulator)
    authenticate_with_certificate(client, cred, ContextIdentifier.nip(context), poll_interval=0.02)
    return client


def test_a_person_grant_lets_the_person_in_and_its_revocation_keeps_them_out(simulator):
    owner = token_client(simulator, nip=COMPANY)
    with pytest.raises(KsefAuthenticationFailed) as info:
        pesel_login(simulator)
    assert info.value.status_code == 415  # no permissions in the context yet
    permissions.grant(owner, "persons", person_grant(["InvoiceRead", "InvoiceWrite"]), poll_interval=0.02)
    person = pesel_login(simulator)
    own = list(person.query_permissions("personal"))
    assert sorted(p["permissionScope"] for p in own) == ["InvoiceRead", "InvoiceWrite"]
    assert own[0]["subjectPersonDetails"]["lastName"] == "Kowalski"
    listed = list(owner.query_permissions("persons", {"queryType": "PermissionsInCurrentContext"}))
    assert {(p["authorizedIdentifier"]["value"], p["permissionScope"]) for p in listed} == {
        (PESEL, "InvoiceRead"),
        (PESEL, "InvoiceWrite"),
    }
    mine = list(owner.query_permissions("persons", {"queryType": "PermissionsGrantedInCurrentContext"}))
    assert len(mine) == 2
    only_read = list(
        owner.query_permissions(
            "persons", {"queryType": "PermissionsInCurrentContext", "permissionTypes": ["InvoiceRead"]}
        )
    )
    assert [p["permissionScope"] for p in only_read] == ["InvoiceRead"]
    for p in listed:
        permissions.revoke(owner, p["id"], poll_interval=0.02)
    assert list(owner.query_permissions("persons", {"queryType": "PermissionsInCurrentContext"})) == []
    with pytest.raises(KsefAuthenticationFailed):
        pesel_login(simulator)


def test_an_entity_grant_lets_an_office_send_the_sellers_invoices(simulator):
    seller = token_client(simulator)
    office = token_client(simulator, nip=OFFICE)
    with OnlineSession(office) as session:  # not yet allowed: 410 (wrong permission scope)
        refused = session.send(invoice(NIP))
        assert (
            session.wait_for_invoices([refused.reference_number], timeout=5, poll_interval=0.05)[
                refused.reference_number
            ].code
            == 410
        )
    body = {
        "subjectIdentifier": {"type": "Nip", "value": OFFICE},
        "permissions": [{"type": "InvoiceWrite", "canDelegate": True}, {"type": "InvoiceRead"}],
        "description": "Biuro rachunkowe",
        "subjectDetails": {"fullName": "Biuro Rachunkowe Sp. z o.o."},
    }
    permissions.grant(seller, "entities", body, poll_interval=0.02)
    with OnlineSession(office) as session:
        sent = session.send(invoice(NIP))
        st = session.wait_for_invoices([sent.reference_number], timeout=5, poll_interval=0.05)[
            sent.reference_number
        ]
    assert st.code == 200 and st.ksef_number.startswith(NIP)
    received = list(office.query_permissions("entities"))
    assert {(p["contextIdentifier"]["value"], p["permissionScope"], p["canDelegate"]) for p in received} == {
        (NIP, "InvoiceWrite", True),
        (NIP, "InvoiceRead", False),
    }
    # the office passes on what it may delegate (selectively, for this client), not the rest
    indirect = {
        "subjectIdentifier": {"type": "Pesel", "value": PESEL},
        "targetIdentifier": {"type": "Nip", "value": NIP},
        "description": "Pracownik biura",
        "subjectDetails": PERSON,
    }
    permissions.grant(office, "indirect", {**indirect, "permissions": ["InvoiceWrite"]}, poll_interval=0.02)
    with pytest.raises(KsefOperationFailed) as info:
        permissions.grant(
            office, "indirect", {**indirect, "permissions": ["InvoiceRead"]}, poll_interval=0.02
        )
    assert info.value.status_code == 410
    granted = list(office.query_permissions("persons", {"queryType": "PermissionsGrantedInCurrentContext"}))
    assert [(p["permissionScope"], p["targetIdentifier"]) for p in granted] == [
        ("InvoiceWrite", {"type": "Nip", "value": NIP})
    ]


def test_entity_authorisations_are_granted_queried_and_revoked_on_their_own_endpoint(simulator):
    seller = token_client(simulator)
    office = token_client(simulator, nip=OFFICE)
    body = {
        "subjectIdentifier": {"type": "Nip", "value": OFFICE},
        "permission": "SelfInvoicing",
        "description": "Samofakturowanie",
        "subjectDetails": {"fullName": "Odbiorca Samofakturujący"},
    }
    permissions.grant(seller, "authorizations", body, poll_interval=0.02)
    granted = list(seller.query_permissions("authorizations", {"queryType": "Granted"}))
    received = list(office.query_permissions("authorizations", {"queryType": "Received"}))
    assert (
        [g["authorizationScope"] for g in granted]
        == [g["authorizationScope"] for g in received]
        == ["SelfInvoicing"]
    )
    with pytest.raises(KsefOperationFailed) as info:  # not through the common endpoint
        permissions.revoke(seller, granted[0]["id"], poll_interval=0.02)
    assert info.value.status_code == 400
    permissions.revoke(seller, granted[0]["id"], authorization=True, poll_interval=0.02)
    assert list(seller.query_permissions("authorizations", {"queryType": "Granted"})) == []
    with pytest.raises(KsefOperationFailed) as info:  # PefInvoicing goes to a Peppol provider only
        permissions.grant(
            seller, "authorizations", {**body, "permission": "PefInvoicing"}, poll_interval=0.02
        )
    assert info.value.status_code == 410


def test_subunits_roles_and_administrators(simulator):
    unit = "3333333333"
    post_testdata(
        simulator,
        "/subject",
        {
            "subjectNip": COMPANY,
            "subjectType": "JST",
            "description": "Gmina Testowa",
            "subunits": [{"subjectNip": unit, "description": "Szkoła Podstawowa"}],
        },
    )
    parent = token_client(simulator, nip=COMPANY)
    assert [r["role"] for r in parent.entity_roles()] == ["LocalGovernmentUnit"]
    assert [
        (r["subordinateEntityIdentifier"]["value"], r["role"])
        for r in parent.query_permissions("subordinate-entities")
    ] == [(unit, "LocalGovernmentSubUnit")]
    child = token_client(simulator, nip=unit)
    assert [(r["role"], r["parentEntityIdentifier"]["value"]) for r in child.entity_roles()] == [
        ("LocalGovernmentSubUnit", COMPANY)
    ]
    body = {
        "subjectIdentifier": {"type": "Pesel", "value": PESEL},
        "contextIdentifier": {"type": "Nip", "value": unit},
        "description": "Administrator szkoły",
        "subunitName": "Szkoła Podstawowa nr 1",
        "subjectDetails": PERSON,
    }
    permissions.grant(parent, "subunits", body, poll_interval=0.02)
    rows = list(parent.query_permissions("subunits"))
    assert [(r["subunitIdentifier"]["value"], r["permissionScope"], r["subunitName"]) for r in rows] == [
        (unit, "CredentialsManage", "Szkoła Podstawowa nr 1")
    ]
    assert pesel_login(simulator, unit).context_limits()  # the administrator works in the unit's context
    internal = {**body, "contextIdentifier": {"type": "InternalId", "value": f"{NIP}-12345"}}
    with pytest.raises(KsefOperationFailed) as info:  # an internal id of another NIP
        permissions.grant(parent, "subunits", internal, poll_interval=0.02)
    assert info.value.status_code == 410


def test_eu_entity_administrator_and_grants(simulator):
    owner = token_client(simulator)
    fingerprint = "A" * 64
    body = {
        "subjectIdentifier": {"type": "Fingerprint", "value": fingerprint},
        "contextIdentifier": {"type": "NipVatUe", "value": f"{NIP}-DE123456789"},
        "description": "Administrator podmiotu unijnego",
        "euEntityName": "Handel GmbH",
        "euEntityDetails": {"fullName": "Handel GmbH", "address": "Berlin"},
        "subjectDetails": {
            "subjectDetailsType": "EntityByFingerprint",
            "entityByFp": {"fullName": "Handel GmbH", "address": "Berlin"},
        },
    }
    permissions.grant(owner, "eu-entities/administration", body, poll_interval=0.02)
    rows = list(owner.query_permissions("eu-entities", {"vatUeIdentifier": "DE123456789"}))
    assert sorted(r["permissionScope"] for r in rows) == [
        "Introspection",
        "InvoiceRead",
        "InvoiceWrite",
        "VatUeManage",
    ]
    assert all(
        r["authorizedFingerprintIdentifier"] == fingerprint and r["euEntityName"] == "Handel GmbH"
        for r in rows
    )


def test_the_eu_entity_administrator_grants_within_the_eu_context(simulator):
    owner = token_client(simulator)
    admin_cert = generate_test_credential(CertificateKind.OTHER, key_type="EC")
    context = f"{NIP}-DE123456789"
    details = {"fullName": "Handel GmbH", "address": "Berlin"}
    permissions.grant(
        owner,
        "eu-entities/administration",
        {
            "subjectIdentifier": {"type": "Fingerprint", "value": admin_cert.fingerprint_sha256_hex},
            "contextIdentifier": {"type": "NipVatUe", "value": context},
            "description": "Administrator podmiotu unijnego",
            "euEntityName": "Handel GmbH",
            "euEntityDetails": details,
            "subjectDetails": {"subjectDetailsType": "EntityByFingerprint", "entityByFp": details},
        },
        poll_interval=0.02,
    )
    admin = new_client(simulator)
    authenticate_with_certificate(
        admin,
        admin_cert,
        ContextIdentifier("NipVatUe", context),
        subject_identifier_type="certificateFingerprint",
        poll_interval=0.02,
    )
    worker = "B" * 64
    permissions.grant(
        admin,
        "eu-entities",
        {
            "subjectIdentifier": {"type": "Fingerprint", "value": worker},
            "permissions": ["InvoiceRead"],
            "description": "Księgowy podmiotu unijnego",
            "subjectDetails": {
                "subjectDetailsType": "PersonByFingerprintWithIdentifier",
                "personByFpWithId": {
                    "firstName": "Hans",
                    "lastName": "Meier",
                    "identifier": {"type": "Pesel", "value": PESEL},
                },
            },
        },
        poll_interval=0.02,
    )
    rows = [
        r for r in owner.query_permissions("eu-entities") if r["authorizedFingerprintIdentifier"] == worker
    ]
    assert [
        (r["permissionScope"], r["euEntityName"], r["subjectPersonDetails"]["lastName"]) for r in rows
    ] == [("InvoiceRead", "Handel GmbH", "Meier")]
    with pytest.raises(KsefForbidden):  # only an administrator of the EU entity (VatUeManage) grants there
        owner.grant_permissions(
            "eu-entities",
            {
                "subjectIdentifier": {"type": "Fingerprint", "value": worker},
                "permissions": ["InvoiceRead"],
                "description": "Bez uprawnień",
                "subjectDetails": {"subjectDetailsType": "EntityByFingerprint", "entityByFp": details},
            },
        )


def test_operation_statuses_rules_and_retention(simulator):
    owner = token_client(simulator)
    with pytest.raises(KsefOperationFailed) as info:  # EnforcementOperations needs a bailiff or authority
        permissions.grant(owner, "persons", person_grant(["EnforcementOperations"]), poll_interval=0.02)
    assert info.value.status_code == 450
    with simulator.app.conformance.expect_invalid_requests(), pytest.raises(KsefBadRequest) as bad:
        owner.grant_permissions("persons", {**person_grant(["InvoiceRead"]), "description": "x"})
    assert bad.value.code == 21405
    with pytest.raises(ValueError):
        owner.grant_permissions("everything", {})
    reference = owner.grant_permissions("persons", person_grant(["InvoiceRead"]))
    assert owner.permission_operation_status(reference)["status"]["code"] == 200
    control(simulator, "/clock", {"advanceSeconds": 31 * 24 * 3600})
    fresh = token_client(simulator)
    with pytest.raises(KsefGone):
        fresh.permission_operation_status(reference)
    reader = token_client(simulator, permissions=["InvoiceRead"])
    with pytest.raises(KsefForbidden):
        reader.grant_permissions("persons", person_grant(["InvoiceRead"]))


def test_peppol_providers_are_public(simulator):
    providers = list(new_client(simulator).peppol_providers(page_size=10))
    assert len(providers) == 2 and all(p["id"].startswith("P") and len(p["id"]) == 9 for p in providers)
    assert [p["dateCreated"] for p in providers] == sorted(
        (p["dateCreated"] for p in providers), reverse=True
    )


def test_attachment_permission_status(simulator):
    client = token_client(simulator)
    assert client.attachment_permission_status() == {"isAttachmentAllowed": False}
    post_testdata(simulator, "/attachment", {"nip": NIP})
    assert client.attachment_permission_status()["isAttachmentAllowed"] is True
