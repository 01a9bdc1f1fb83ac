"""Classification rules, framework-free: the compiled form of a buffer's rules and their evaluation.

The Odoo addon compiles its ``ksefnet.classification.rule`` records into :class:`Rule` objects once per
run, reads the :class:`Facts` of each document once (:func:`facts_of`), and :func:`apply_rules` decides the
document: which rules match (conditions combined with AND), in order, until one with ``stop`` matches; the
last catalog and shop set win, tags add up. What is stored, and how the reasons are worded, is the addon's.

Reasons are plain ``(key, params)`` pairs (``("gln", {"gln": "5901234000001"})``), so equal results compare
equal and the addon words them in the reader's language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fa3 import Invoice
from .matching import (
    ShopAddress,
    any_pattern_matches,
    delivery_identifiers,
    invoice_addresses,
    invoice_glns,
    padded_address,
)

#: the document fields a rule's "text in field" condition may look into
TEXT_FIELDS = (
    "invoice_number",
    "seller_name",
    "buyer_name",
    "seller_nip",
    "buyer_nip",
    "buyer_identifier",
    "shop_code",
    "source",
)


@dataclass(frozen=True, slots=True)
class Shop:
    """A shop as the rules look for it on invoices."""

    shop_id: int
    code: str
    address: ShopAddress
    glns: frozenset = frozenset()
    patterns: tuple = ()


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules read of one document, read once."""

    direction: str
    kind: str
    seller_nip: str
    gross: float
    validity: str
    texts: dict
    addresses: list  # normalised once (padded_address): each is compared with many shops' addresses
    glns: list
    identifiers: list
    has_invoice: bool


def facts_of(values: Mapping[str, Any], invoice: Invoice | None, validity: str) -> Facts:
    """The facts of a document: ``values`` gives its stored fields by name (``values[name]``, False or None
    when not set: an Odoo record, a row about to be inserted, a dict); ``invoice`` is its parsed XML (None
    when it cannot be read); ``validity`` the result of the check whether it is addressed to the company."""
    return Facts(
        direction=values["direction"],
        kind=values["invoice_kind"] or "",
        seller_nip=values["seller_nip"] or "",
        gross=values["amount_gross"] or 0.0,
        validity=validity,
        texts={name: (values[name] or "").lower() for name in TEXT_FIELDS},
        addresses=[p for p in map(padded_address, invoice_addresses(invoice)) if p] if invoice else [],
        glns=invoice_glns(invoice) if invoice else [],
        identifiers=delivery_identifiers(invoice) if invoice else [],
        has_invoice=invoice is not None,
    )


#: a matched condition: (key, parameters), e.g. ("gln", {"gln": "5901234000011"})
Reason = tuple[str, dict[str, Any]]
_NO: tuple[bool, Sequence[Reason], int | None] = (False, (), None)  # a rule that does not match


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: its conditions (each set one must hold) and its actions."""

    rule_id: int
    name: str = ""
    direction: str = "any"  # any, sales, purchase
    kinds: frozenset = frozenset()  # invoice kinds; empty: any
    seller_nips: frozenset = frozenset()
    amount_min: float = 0.0
    amount_max: float = 0.0  # 0: no upper limit
    validity: str = "any"
    text_field: str | bool = False  # one of TEXT_FIELDS
    text_value: str = ""  # lower case
    address_shops: Sequence[Shop] | None = None  # None: the address is not checked
    gln_match: str = "none"  # none, any_shop, value
    gln_values: frozenset = frozenset()
    delivery_match: str = "none"  # none, any_shop, pattern
    delivery_patterns: tuple = ()
    shops: Sequence[Shop] = ()  # every shop of the buffer ("any shop's GLN / identifiers")
    catalog_id: int | bool = False
    shop_action: str = "none"  # none, matched, set
    shop_id: int | bool = False
    tag_ids: tuple = ()
    stop: bool = False
    needs_invoice: bool = field(init=False, default=False)  # a condition reads the XML

    def __post_init__(self):
        object.__setattr__(
            self,
            "needs_invoice",
            self.address_shops is not None or self.gln_match != "none" or self.delivery_match != "none",
        )

    def evaluate(self, f: Facts) -> tuple[bool, Sequence[Reason], int | None]:
        """(matched, reasons, id of the shop found by the conditions or None); all set conditions must hold."""
        reasons: list[Reason] = []
        found: int | None = None
        if self.direction != "any":
            if f.direction != self.direction:
                return _NO
            reasons.append(("direction", {"d": f.direction}))
        if self.kinds:
            if f.kind not in self.kinds:
                return _NO
            reasons.append(("kind", {"k": f.kind}))
        if self.seller_nips:
            if f.seller_nip not in self.seller_nips:
                return _NO
            reasons.append(("seller", {"nip": f.seller_nip}))
        if self.amount_min or self.amount_max:
            if (self.amount_min and f.gross < self.amount_min) or (
                self.amount_max and f.gross > self.amount_max
            ):
                return _NO
            reasons.append(("gross", {"amount": f.gross}))
        if self.validity != "any":
            if f.validity != self.validity:
                return _NO
            reasons.append(("validity", {"v": f.validity}))
        if self.text_field:
            if self.text_value not in f.texts.get(self.text_field, ""):
                return _NO
            reasons.append(("text", {"field": self.text_field, "text": self.text_value}))
        if not self.needs_invoice:
            return True, reasons, found
        if not f.has_invoice:
            return _NO
        if self.address_shops is not None:
            shop = next(
                (s for s in self.address_shops if any(s.address.matches_text(a) for a in f.addresses)), None
            )
            if shop is None:
                return _NO
            found = shop.shop_id
            reasons.append(("address", {"code": shop.code}))
        if self.gln_match != "none":
            if self.gln_match == "value":
                hit = next((g for g in f.glns if g in self.gln_values), None)
            else:
                shop = next((s for s in self.shops if s.glns.intersection(f.glns)), None)
                hit = next(iter(shop.glns.intersection(f.glns))) if shop else None
                if shop:
                    found = found or shop.shop_id
            if not hit:
                return _NO
            reasons.append(("gln", {"gln": hit}))
        if self.delivery_match != "none":
            if self.delivery_match == "pattern":
                hit = any_pattern_matches(self.delivery_patterns, f.identifiers)
            else:
                hit = None
                for shop in self.shops:
                    hit = any_pattern_matches(shop.patterns, f.identifiers)
                    if hit:
                        found = found or shop.shop_id
                        break
            if not hit:
                return _NO
            reasons.append(("delivery", {"id": hit}))
        return True, reasons, found


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where the rules put a document: the last catalog and shop set (False: none), the tags of every
    matching rule (sorted), and the matching rules in order with the reasons they matched."""

    catalog_id: int | bool
    shop_id: int | bool
    tag_ids: list
    hits: list  # [(Rule, reasons)]

    @property
    def rule_ids(self) -> list[int]:
        return [rule.rule_id for rule, _reasons in self.hits]


def apply_rules(rules: Iterable[Rule], facts: Facts, shop_id: int | bool = False) -> Outcome:
    """Run ``rules`` in order on a document's ``facts``; ``shop_id`` is its shop before the rules (the one
    its shop code names)."""
    catalog: int | bool = False
    shop: int | bool = shop_id
    tags: set[int] = set()
    hits: list[tuple[Rule, Sequence[Reason]]] = []
    for rule in rules:
        ok, why, found_shop = rule.evaluate(facts)
        if not ok:
            continue
        hits.append((rule, why))
        if rule.catalog_id:
            catalog = rule.catalog_id
        if rule.shop_action == "set" and rule.shop_id:
            shop = rule.shop_id
        elif rule.shop_action == "matched" and found_shop:
            shop = found_shop
        tags.update(rule.tag_ids)
        if rule.stop:
            break
    return Outcome(catalog, shop, sorted(tags), hits)
