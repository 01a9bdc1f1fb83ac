from pathlib import Path

import pytest

from ksefnet_core import fa3
from ksefnet_core.fa3 import Address
from ksefnet_core.matching import (
    INVALID,
    REVIEW,
    VALID,
    ShopAddress,
    any_pattern_matches,
    check_addressed_to,
    delivery_identifiers,
    fold,
    invoice_glns,
    normalize_address,
    pattern_matches,
)
from ksefnet_core.testing import ThirdParty, sample_invoice

DATA = Path(__file__).resolve().parent / "data" / "fa3-mf-examples"
US = "5265877635"


def test_fold_and_address_normalisation():
    assert fold("Zażółć gęślą jaźń ŁÓDŹ") == "zazolc gesla jazn lodz"
    assert normalize_address("ul. Długa 5/2, 00-950  Łódź") == normalize_address("DLUGA 5 2 00950 LODZ")
    assert normalize_address("Al. Jerozolimskie 100") == "jerozolimskie 100"


def test_shop_address_matches_structured_or_free_lines():
    shop = ShopAddress(street="ul. Handlowa 7", postal_code="10-107", city="Warszawa")
    assert shop.matches(Address("PL", "UL. HANDLOWA 7", "10-107 WARSZAWA"))
    assert not shop.matches(Address("PL", "ul. Handlowa 17", "10-107 Warszawa")), "17 is not 7"
    assert not shop.matches(Address("PL", "ul. Handlowa 7", "20-107 Warszawa"))
    free = ShopAddress(lines=("Sklep nr 12, Galeria Mokotów",))
    assert free.matches(Address("PL", "Sklep Nr 12 Galeria Mokotow", "02-677 Warszawa"))
    assert not ShopAddress().matches(Address("PL", "x", "y"))


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("WZ/12/*", "wz/12/2026/7", True),
        ("WZ/12/*", "WZ/13/1", False),
        ("re:^ZAM-\\d{4}$", "zam-1234", True),
        ("re:[", "anything", False),
        ("K-77", " k-77 ", True),
        ("", "x", False),
    ],
)
def test_patterns(pattern, value, expected):
    assert pattern_matches(pattern, value) is expected


def test_identifiers_and_glns_from_an_invoice():
    inv = fa3.parse(
        sample_invoice(
            seller_nip="1111111111",
            number="FV/1",
            buyer_nip=US,
            buyer_gln="5901234123457",
            customer_number="K-9",
            delivery_notes=("WZ/7/1",),
            order_number="ZAM-0001",
            third_parties=(
                ThirdParty(
                    internal_id=f"{US}-00012",
                    role=2,
                    gln="5900000000017",
                    address_line1="ul. A 1",
                    address_line2="00-001 W",
                ),
            ),
        )
    )
    assert delivery_identifiers(inv) == ["WZ/7/1", "ZAM-0001", "K-9"]
    assert invoice_glns(inv) == ["5901234123457", "5900000000017"]
    assert any_pattern_matches(["WZ/7/*"], delivery_identifiers(inv)) == "WZ/7/1"


def test_validity_cases():
    def inv(**kw):
        return fa3.parse(sample_invoice(seller_nip="1111111111", number="FV/V", **kw))

    ok = check_addressed_to(
        inv(buyer_nip=US, buyer_name="Sieć Sklepów Sp. z o.o."), US, company_name="Sieć Sklepów S.A."
    )
    assert ok.result == VALID and "buyer NIP" in ok.reasons[0]
    other = check_addressed_to(inv(buyer_nip="7740001454"), US)
    assert other.result == INVALID and "7740001454" in other.reasons[0]
    third = check_addressed_to(
        inv(buyer_nip="7740001454", third_parties=(ThirdParty(internal_id=f"{US}-00001", role=2),)), US
    )
    assert third.result == VALID and "role 2" in third.reasons[0]
    payer_only = check_addressed_to(
        inv(buyer_nip="7740001454", third_parties=(ThirdParty(nip=US, role=1),)), US
    )
    assert payer_only.result == INVALID, "a factor (role 1) is not a recipient"
    odd_name = check_addressed_to(
        inv(buyer_nip=US, buyer_name="Zupełnie Inna Firma"), US, company_name="Sieć Sklepów Sp. z o.o."
    )
    assert odd_name.result == REVIEW


def test_validity_of_the_mf_samples():
    foreign = fa3.parse((DATA / "FA_3_Przyklad_22.xml").read_bytes())  # buyer with an EU VAT number
    assert check_addressed_to(foreign, "1111111111").result == REVIEW
    domestic = fa3.parse((DATA / "FA_3_Przyklad_1.xml").read_bytes())
    assert check_addressed_to(domestic, "1111111111").result == VALID
    assert check_addressed_to(domestic, US).result == INVALID


def test_an_address_normalised_once_matches_as_the_address_itself():
    from ksefnet_core.matching import padded_address

    shops = [
        ShopAddress(street="ul. Handlowa 7", postal_code="10-107", city="Warszawa"),
        ShopAddress(lines=("Sklep nr 12, Galeria Mokotów",)),
        ShopAddress(street="Długa 1"),
    ]
    addresses = [
        Address(line1="UL. HANDLOWA 7", line2="10107 Warszawa"),
        Address(line1="Galeria Mokotow, sklep nr 12"),
        Address(line1="Krótka 3", line2="00-001 Kraków"),
        None,
    ]
    for shop in shops:
        for address in addresses:
            assert shop.matches_text(padded_address(address)) == shop.matches(address)
    assert padded_address(None) == "" and not shops[0].matches_text("")
