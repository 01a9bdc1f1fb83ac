"""The TEST-environment tools through the client (conformance on): subjects, persons (owner, bailiff, deceased),
permissions, attachments (with an end date), context blocking, session/subject/rate limits."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ksefnet_core import permissions
from ksefnet_core.auth import ContextIdentifier, authenticate_with_certificate
from ksefnet_core.certificates import CertificateKind, generate_test_credential
from ksefnet_core.errors import KsefAuthenticationFailed, KsefBadRequest, KsefOperationFailed

from .client_support import COMPANY, PESEL, control, new_client, token_client

OTHER_PESEL = "02070803628"


def pesel_login(simulator, pesel: str = PESEL, nip: str = COMPANY):
    cred = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=pesel)
    client = new_client(simulator)
    authenticate_with_certificate(client, cred, ContextIdentifier.nip(nip), poll_interval=0.02)
    return client


def test_subjects_are_created_once_and_removed(simulator):
    client = new_client(simulator)
    client.create_test_subject(
        COMPANY,
        "VatGroup",
        "Grupa VAT testowa",
        [{"subjectNip": "3333333333", "description": "Członek grupy"}],
    )
    with pytest.raises(KsefBadRequest) as info:
        client.create_test_subject(COMPANY, "VatGroup", "Grupa VAT testowa")
    assert info.value.code == 30001
    assert [r["role"] for r in token_client(simulator, nip=COMPANY).entity_roles()] == ["VatGroupUnit"]
    client.remove_test_subject(COMPANY)
    assert list(token_client(simulator, nip=COMPANY).entity_roles()) == []
    with simulator.app.conformance.expect_invalid_requests(), pytest.raises(KsefBadRequest) as info:
        client.create_test_subject(COMPANY, "VatGroup", "x")  # description of 5 to 256 characters
    assert info.value.code == 21405


def test_persons_owners_bailiffs_and_the_deceased(simulator):
    client = new_client(simulator)
    with pytest.raises(KsefAuthenticationFailed):
        pesel_login(simulator)
    client.create_test_person(COMPANY, PESEL, "Właściciel firmy", is_bailiff=True)
    owner = pesel_login(simulator)
    assert "CourtBailiff" in [r["role"] for r in owner.entity_roles()]
    # a bailiff's office may grant EnforcementOperations
    body = {
        "subjectIdentifier": {"type": "Pesel", "value": OTHER_PESEL},
        "permissions": ["EnforcementOperations"],
        "description": "Asesor komorniczy",
        "subjectDetails": {
            "subjectDetailsType": "PersonByIdentifier",
            "personById": {"firstName": "Anna", "lastName": "Nowak"},
        },
    }
    permissions.grant(owner, "persons", body, poll_interval=0.02)
    client.remove_test_person(COMPANY)
    with pytest.raises(KsefAuthenticationFailed):
        pesel_login(simulator)
    client.create_test_person("5555555555", OTHER_PESEL, "Osoba zmarła", is_deceased=True)
    with pytest.raises(KsefAuthenticationFailed) as info:
        pesel_login(simulator, OTHER_PESEL, "5555555555")
    assert info.value.status_code == 470


def test_test_permissions_for_a_fingerprint(simulator):
    cred = generate_test_credential(CertificateKind.OTHER)
    who = {"type": "Fingerprint", "value": cred.fingerprint_sha256_hex}
    client = new_client(simulator)
    client.grant_test_permissions(
        COMPANY, who, {"InvoiceRead": "Odczyt faktur", "CollectiveIdentifierManage": "Identyfikatory"}
    )
    ok = new_client(simulator)
    authenticate_with_certificate(
        ok,
        cred,
        ContextIdentifier.nip(COMPANY),
        subject_identifier_type="certificateFingerprint",
        poll_interval=0.02,
    )
    client.revoke_test_permissions(COMPANY, who)
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_certificate(
            new_client(simulator),
            cred,
            ContextIdentifier.nip(COMPANY),
            subject_identifier_type="certificateFingerprint",
            poll_interval=0.02,
        )
    assert info.value.status_code == 415


def test_attachments_and_their_revocation_with_an_end_date(simulator):
    client = token_client(simulator, nip=COMPANY)
    client.allow_test_attachments(COMPANY)
    assert client.attachment_permission_status() == {"isAttachmentAllowed": True}
    client.revoke_test_attachments(COMPANY, date.today() + timedelta(days=2))
    status = client.attachment_permission_status()
    assert status["isAttachmentAllowed"] is True and "revokedDate" in status  # until the end date
    control(simulator, "/clock", {"advanceSeconds": 4 * 24 * 3600})
    assert token_client(simulator, nip=COMPANY).attachment_permission_status()["isAttachmentAllowed"] is False
    client.revoke_test_attachments(COMPANY)


def test_blocking_a_context(simulator):
    client = new_client(simulator)
    client.block_test_context({"type": "Nip", "value": COMPANY})
    with pytest.raises(KsefAuthenticationFailed) as info:
        token_client(simulator, nip=COMPANY)
    assert info.value.status_code == 480
    client.unblock_test_context({"type": "Nip", "value": COMPANY})
    assert token_client(simulator, nip=COMPANY).context_limits()


def test_session_subject_and_rate_limits(simulator):
    client = token_client(simulator)
    limits = client.context_limits()
    limits["onlineSession"]["maxInvoices"] = 5
    client.set_test_session_limits(limits)
    assert client.context_limits()["onlineSession"]["maxInvoices"] == 5
    client.reset_test_session_limits()
    assert client.context_limits()["onlineSession"]["maxInvoices"] == 10000
    client.set_test_subject_limits({"subjectIdentifierType": "Nip", "enrollment": {"maxEnrollments": 3}})
    assert client.subject_limits()["enrollment"] == {"maxEnrollments": 3}
    client.reset_test_subject_limits()
    rates = client.rate_limits()
    rates["invoiceSend"] = {"perSecond": 1, "perMinute": 2, "perHour": 3}
    client.set_test_rate_limits(rates)
    assert client.rate_limits()["invoiceSend"] == {"perSecond": 1, "perMinute": 2, "perHour": 3}
    client.set_test_production_rate_limits()
    assert client.rate_limits()["invoiceSend"] == {"perSecond": 10, "perMinute": 30, "perHour": 180}
    client.set_test_rate_limits(rates)
    client.reset_test_rate_limits()
    assert client.rate_limits()["invoiceSend"] == {"perSecond": 10, "perMinute": 30, "perHour": 180}
    with pytest.raises(KsefOperationFailed):  # EnforcementOperations without a bailiff or authority
        permissions.grant(
            client,
            "persons",
            {
                "subjectIdentifier": {"type": "Pesel", "value": PESEL},
                "permissions": ["EnforcementOperations"],
                "description": "Bez roli",
                "subjectDetails": {
                    "subjectDetailsType": "PersonByIdentifier",
                    "personById": {"firstName": "Jan", "lastName": "Nowak"},
                },
            },
            poll_interval=0.02,
        )
