"""The framework-free rule engine (ksefnet_core.rules): conditions, actions, order and stop."""

from ksefnet_core import fa3
from ksefnet_core.matching import ShopAddress
from ksefnet_core.rules import TEXT_FIELDS, Rule, Shop, apply_rules, facts_of
from ksefnet_core.testing import sample_invoice

US = "5265877635"
SHOPS = [
    Shop(1, "S1", ShopAddress(street="ul. Handlowa 1", postal_code="10-100"), frozenset({"5901234000011"}),
         ("WZ/1/*",)),
    Shop(2, "S2", ShopAddress(street="ul. Handlowa 2", postal_code="20-100"), frozenset({"5901234000022"}),
         ("WZ/2/*",)),
]  # fmt: skip


def _doc(**kwargs):
    invoice = fa3.parse(sample_invoice(seller_nip=kwargs.pop("seller", "7740001454"), number="FV/1",
                                       buyer_nip=US, **kwargs))  # fmt: skip
    values = dict.fromkeys(TEXT_FIELDS, False)
    values.update(fa3.document_fields(invoice), direction="purchase", source="KSeF")
    return values, invoice


def test_document_fields_are_what_the_buffer_stores():
    values, invoice = _doc()
    assert values["invoice_number"] == "FV/1" and values["seller_nip"] == "7740001454"
    assert values["buyer_nip"] == US and values["buyer_identifier"] is None
    assert values["amount_gross"] == float(invoice.gross_total) and values["xml_sha256"] == invoice.sha256_b64


def test_each_condition_must_hold_and_gives_its_reason():
    values, invoice = _doc(buyer_address=("ul. Handlowa 2", "20-100 Warszawa"), buyer_gln="5901234000022",
                           delivery_notes=("WZ/2/77",))  # fmt: skip
    facts = facts_of(values, invoice, "valid")
    ok, why, found = Rule(
        1, address_shops=SHOPS, gln_match="any_shop", delivery_match="any_shop", shops=SHOPS
    ).evaluate(facts)
    assert ok and found == 2
    assert why == [
        ("address", {"code": "S2"}),
        ("gln", {"gln": "5901234000022"}),
        ("delivery", {"id": "WZ/2/77"}),
    ]
    assert not Rule(2, address_shops=SHOPS[:1]).evaluate(facts)[0], "the address of another shop"
    assert not Rule(3, gln_match="value", gln_values=frozenset({"5901234000011"})).evaluate(facts)[0]
    assert Rule(4, delivery_match="pattern", delivery_patterns=("re:WZ/\\d/7+",)).evaluate(facts)[0]
    assert not Rule(5, direction="sales").evaluate(facts)[0]
    assert Rule(6, validity="valid", kinds=frozenset({"VAT"})).evaluate(facts)[1] == [
        ("kind", {"k": "VAT"}),
        ("validity", {"v": "valid"}),
    ]
    gross = values["amount_gross"]
    assert Rule(7, amount_min=gross - 1, amount_max=gross + 1).evaluate(facts)[0]
    assert not Rule(8, amount_min=gross + 1).evaluate(facts)[0]
    assert not Rule(9, amount_max=gross - 1).evaluate(facts)[0]
    assert Rule(10, text_field="seller_name", text_value="agd").evaluate(facts)[0]
    assert not Rule(11, text_field="buyer_name", text_value="agd").evaluate(facts)[0]
    assert not Rule(12, seller_nips=frozenset({"9999999999"})).evaluate(facts)[0]


def test_rules_on_the_xml_do_not_match_a_document_whose_xml_cannot_be_read():
    values, _invoice = _doc()
    facts = facts_of(values, None, "review")
    assert not Rule(1, gln_match="any_shop", shops=SHOPS).evaluate(facts)[0]
    assert Rule(2, validity="review").evaluate(facts)[0], "conditions on stored fields still apply"


def test_rules_apply_in_order_until_stop_last_catalog_and_shop_win_tags_add_up():
    values, invoice = _doc(buyer_address=("ul. Handlowa 1", "10-100 Warszawa"))
    facts = facts_of(values, invoice, "valid")
    rules = [
        Rule(1, catalog_id=10, tag_ids=(3, 1)),
        Rule(2, address_shops=SHOPS, shop_action="matched", catalog_id=11, tag_ids=(2,)),
        Rule(3, direction="sales", catalog_id=12),  # does not match
        Rule(4, shop_action="set", shop_id=2, stop=True),
        Rule(5, catalog_id=13),  # after the stop
    ]
    outcome = apply_rules(rules, facts, shop_id=7)
    assert (outcome.catalog_id, outcome.shop_id, outcome.tag_ids, outcome.rule_ids) == (
        11,
        2,
        [1, 2, 3],
        [1, 2, 4],
    )
    untouched = apply_rules([Rule(3, direction="sales", catalog_id=12)], facts, shop_id=7)
    assert (untouched.catalog_id, untouched.shop_id, untouched.hits) == (False, 7, [])


def test_a_buyer_with_a_foreign_identifier_and_no_country_code():
    invoice = fa3.parse(sample_invoice(seller_nip="7740001454", number="FV/2", buyer_nip=US))
    buyer = fa3.Party(other_id=(None, "X-123"), name="Foreign Ltd")
    fields = fa3.document_fields(type(invoice)(**{**invoice.__dict__, "buyer": buyer}))
    assert fields["buyer_nip"] is None and fields["buyer_identifier"] == "X-123"
