"""Collective identifiers (KSeF API 2.7.0/2.7.1) through the core client against the simulator, over HTTP with
conformance on: creation rules (2..limit invoices of one seller, 132 identifiers per invoice in a context,
71001/71002/21405), the number's format and checksum, queries, the invoices of up to 10 identifiers with
payment details only for those entitled, the identifiers of one invoice, paging and 21418."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ksefnet_core.errors import KsefBadRequest, KsefForbidden
from ksefnet_core.simulator import collective_api
from ksefnet_core.simulator.invoices_api import inject_invoice
from ksefnet_core.testing import sample_invoice

from .client_support import NIP, invoice, token_client

BUYER = "1111111111"
OTHER_SELLER = "7010000005"


def issued(simulator, count: int, seller: str = NIP, buyer: str = BUYER) -> list[str]:
    """``count`` invoices of ``seller`` to ``buyer`` in KSeF (set up directly in the simulator)."""
    return [
        inject_invoice(
            simulator.app, invoice(seller, buyer_nip=buyer) if seller == NIP else _other(seller, buyer)
        )
        for _ in range(count)
    ]


_n = iter(range(1, 10**6))


def _other(seller: str, buyer: str) -> bytes:
    return sample_invoice(seller_nip=seller, buyer_nip=buyer, number=f"FV/OTHER/{next(_n)}")


def window() -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc)
    return now - timedelta(days=1), now + timedelta(minutes=1)


def test_a_seller_groups_its_invoices_under_a_valid_number(simulator):
    client = token_client(simulator)
    numbers = issued(simulator, 3)
    payment = {"amount": 123.45, "currency": "SLE"}  # a currency added in API 2.8.1
    cid = client.create_collective_identifier(
        [
            {"ksefNumber": numbers[0], "payment": payment, "description": "Rata 1"},
            *({"ksefNumber": n} for n in numbers[1:]),
        ]
    )
    assert cid.startswith(f"{NIP}-IZ{datetime.now(timezone.utc):%Y%m}-") and len(cid) == 35
    assert collective_api.is_valid_number(cid)
    assert not collective_api.is_valid_number(cid[:-2] + ("00" if cid[-2:] != "00" else "01"))
    listed = list(client.collective_identifier_invoices([cid], page_size=10))
    assert sorted(i["ksefNumber"] for i in listed) == sorted(numbers)
    assert [i["ksefNumber"] for i in listed] == sorted(numbers, reverse=True)  # KSeF number descending
    first = next(i for i in listed if i["ksefNumber"] == numbers[0])
    assert first["payment"] == payment and first["description"] == "Rata 1" and not first["detailsHidden"]
    assert all(i["collectiveIdentifierNumber"] == cid for i in listed)
    found = list(client.query_collective_identifiers(*window()))
    assert [
        (c["collectiveIdentifierNumber"], c["invoiceCount"], c["createdInCurrentContext"]) for c in found
    ] == [(cid, 3, True)]
    assert [
        c["collectiveIdentifierNumber"] for c in client.collective_identifiers_of_invoice(numbers[1])
    ] == [cid]


def test_the_buyer_may_group_and_sees_details_the_seller_sees_its_identifier(simulator):
    buyer = token_client(simulator, nip=BUYER)
    numbers = issued(simulator, 2)
    cid = buyer.create_collective_identifier(
        [{"ksefNumber": n, "payment": {"amount": 10, "currency": "PLN"}} for n in numbers]
    )
    seller = token_client(simulator)
    mine = list(seller.query_collective_identifiers(*window()))
    assert [(c["collectiveIdentifierNumber"], c["createdInCurrentContext"]) for c in mine] == [(cid, False)]
    assert list(seller.query_collective_identifiers(*window(), createdInCurrentContext=True)) == []
    # the seller is a party of each invoice: it sees the payment details
    assert all(i["payment"]["amount"] == 10 for i in seller.collective_identifier_invoices([cid]))


def test_payment_details_are_hidden_from_contexts_not_entitled(simulator):
    seller = token_client(simulator)
    numbers = issued(simulator, 2)
    cid = seller.create_collective_identifier(
        [{"ksefNumber": n, "payment": {"amount": 5, "currency": "EUR"}, "description": "x"} for n in numbers]
    )
    stranger = token_client(simulator, nip=OTHER_SELLER)
    rows = list(stranger.collective_identifier_invoices([cid]))
    assert len(rows) == 2 and all(
        r["detailsHidden"] and "payment" not in r and "description" not in r for r in rows
    )
    assert list(stranger.collective_identifiers_of_invoice(numbers[0])) == []


def test_creation_rules(simulator):
    client = token_client(simulator)
    mine = issued(simulator, 3)
    foreign = issued(simulator, 1, seller=OTHER_SELLER, buyer="5555555555")
    with pytest.raises(KsefBadRequest) as info:  # fewer than 2
        client.request(
            "POST",
            "/collective-identifiers",
            json_body={"invoices": [{"ksefNumber": mine[0]}]},
            expect=(201,),
        )
    assert info.value.code == 21405
    with pytest.raises(ValueError):  # the client says so before sending
        client.create_collective_identifier([{"ksefNumber": mine[0]}])
    with pytest.raises(KsefBadRequest) as info:  # an invoice the context may not see
        client.create_collective_identifier([{"ksefNumber": mine[0]}, {"ksefNumber": foreign[0]}])
    assert info.value.code == 71001 and foreign[0] in info.value.details[0]
    with pytest.raises(KsefBadRequest) as info:  # the same invoice twice
        client.create_collective_identifier([{"ksefNumber": mine[0]}, {"ksefNumber": mine[0]}])
    assert info.value.code == 21405
    with simulator.app.conformance.expect_invalid_requests(), pytest.raises(KsefBadRequest) as info:
        client.create_collective_identifier(  # an unknown currency
            [{"ksefNumber": mine[0], "payment": {"amount": 1, "currency": "XXY"}}, {"ksefNumber": mine[1]}]
        )
    assert info.value.code == 21405


def test_invoices_of_two_sellers_cannot_share_an_identifier(simulator):
    buyer = token_client(simulator, nip=BUYER)
    a = issued(simulator, 1)
    b = issued(simulator, 1, seller=OTHER_SELLER)
    with pytest.raises(KsefBadRequest) as info:
        buyer.create_collective_identifier([{"ksefNumber": a[0]}, {"ksefNumber": b[0]}])
    assert info.value.code == 71001


def test_the_context_limit_caps_the_invoices_of_one_identifier(simulator):
    client = token_client(simulator)
    limits = client.context_limits()
    limits["collectiveIdentifier"] = {"maxInvoices": 2}
    client.request("POST", "/testdata/limits/context/session", json_body=limits)
    numbers = issued(simulator, 3)
    with pytest.raises(KsefBadRequest) as info:
        client.create_collective_identifier([{"ksefNumber": n} for n in numbers])
    assert info.value.code == 21405 and "2" in info.value.details[0]


def test_an_invoice_belongs_to_at_most_132_identifiers_of_one_context(simulator):
    client = token_client(simulator)
    numbers = issued(simulator, 2)
    store = collective_api.store(simulator.app)
    now = datetime.now(timezone.utc)
    for _ in range(132):  # the 132 earlier identifiers are set up directly (creating them over HTTP is slow)
        ci = collective_api.CollectiveIdentifier(
            collective_api.make_number(NIP, now), "Nip", NIP, NIP, now, [{"ksefNumber": n} for n in numbers]
        )
        store.identifiers[ci.number] = ci
        for n in numbers:
            store.by_invoice.setdefault(n, []).append(ci.number)
    with pytest.raises(KsefBadRequest) as info:
        client.create_collective_identifier([{"ksefNumber": n} for n in numbers])
    assert info.value.code == 71002
    other = token_client(simulator, nip=BUYER)  # another context still may
    assert other.create_collective_identifier([{"ksefNumber": n} for n in numbers])
    page = list(client.collective_identifiers_of_invoice(numbers[0], page_size=50))
    assert len(page) == 133  # three pages of 50, followed by continuation tokens


def test_query_rules_and_paging(simulator):
    client = token_client(simulator)
    for _ in range(12):
        client.create_collective_identifier([{"ksefNumber": n} for n in issued(simulator, 2)])
    found = list(client.query_collective_identifiers(*window(), page_size=10))
    assert len(found) == 12
    assert [c["dateCreated"] for c in found] == sorted((c["dateCreated"] for c in found), reverse=True)
    start = datetime.now(timezone.utc) - timedelta(days=101)
    with pytest.raises(KsefBadRequest) as info:  # more than 100 days
        list(client.query_collective_identifiers(start, datetime.now(timezone.utc)))
    assert info.value.code == 21405
    with simulator.app.conformance.expect_invalid_requests(), pytest.raises(KsefBadRequest) as info:
        client.request(
            "POST",
            "/collective-identifiers/query",
            json_body={"dateCreatedFrom": window()[0].isoformat(), "dateCreatedTo": window()[1].isoformat()},
            headers={"x-continuation-token": "not-a-token"},
        )
    assert info.value.code == 21418
    with pytest.raises(ValueError):
        list(client.collective_identifier_invoices([f"n{i}" for i in range(11)]))


def test_unknown_identifier_and_missing_permission(simulator):
    client = token_client(simulator)
    with pytest.raises(KsefBadRequest) as info:
        list(client.collective_identifier_invoices([f"{NIP}-IZ202612-000000000000-00"]))
    assert info.value.code == 21405
    reader = token_client(simulator, permissions=["CredentialsRead"])
    with pytest.raises(KsefForbidden) as info:
        reader.create_collective_identifier([{"ksefNumber": n} for n in issued(simulator, 2)])
    assert "CollectiveIdentifierManage" in info.value.security["requiredAnyOfPermissions"]
    manager = token_client(simulator, permissions=["CollectiveIdentifierManage"])
    assert manager.create_collective_identifier([{"ksefNumber": n} for n in issued(simulator, 2)])
