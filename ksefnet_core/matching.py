"""Matching helpers for classifying invoices: address normalisation, identifier patterns, and the check
whether an invoice is really addressed to a company ("zasadna / niezasadna").

Framework-free: the Odoo addon feeds it :class:`ksefnet_core.fa3.Invoice` objects and plain company data.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from .fa3 import Address, Invoice, Party

# FA(3) Podmiot3 roles that make the third party a recipient of the invoice (the company may be addressed
# in that role): 2 recipient (odbiorca), 4 additional buyer, 6 payer, 8 local-government recipient,
# 10 VAT-group member recipient.
RECIPIENT_ROLES = frozenset({2, 4, 6, 8, 10})

_STREET_WORDS = re.compile(r"\b(ul|ulica|al|aleja|aleje|pl|plac|os|osiedle|nr)\b\.?")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_POSTAL = re.compile(r"\b(\d{2})\s*-?\s*(\d{3})\b")
_LEGAL_FORMS = {"sp", "z", "o", "oo", "spolka", "s", "a", "sa", "k", "j", "sj", "sk", "ska", "p", "pp"}


def fold(text: str | None) -> str:
    """Lower case without Polish (or any) diacritics; "Łódź" -> "lodz"."""
    if not text:
        return ""
    text = text.replace("ł", "l").replace("Ł", "L")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


@lru_cache(maxsize=4096)
def normalize_address(text: str | None) -> str:
    """An address line reduced for comparison: folded, street words ("ul.", "al.") and punctuation dropped,
    postal codes written 00-000, single spaces. Memoised: a text alone decides it, and the same addresses
    (the shops', the company's) come back on invoice after invoice."""
    folded = _POSTAL.sub(r" \1-\2 ", fold(text))
    folded = _STREET_WORDS.sub(" ", folded)
    parts = [p for p in re.split(r"[^0-9a-z-]+", folded) if p and p != "-"]
    return " ".join(parts)


def address_text(address: Address | None) -> str:
    if address is None:
        return ""
    return normalize_address(" ".join(p for p in (address.line1, address.line2) if p))


def padded_address(address: Address | None) -> str:
    """The normalised address between single spaces (whole-word containment tests), or "" for none."""
    text = address_text(address)
    return f" {text} " if text else ""


def normalize_name(text: str | None) -> set[str]:
    """The significant words of a company name (legal forms such as "sp. z o.o." dropped)."""
    words = {w for w in _NON_WORD.split(fold(text)) if w}
    return {w for w in words if w not in _LEGAL_FORMS and len(w) > 1}


@dataclass(frozen=True)
class ShopAddress:
    """How a shop's address appears on invoices: structured parts and/or free lines as printed."""

    street: str = ""  # street with building number, e.g. "ul. Długa 5 lok. 2"
    postal_code: str = ""
    city: str = ""
    lines: tuple[str, ...] = ()  # free lines exactly as suppliers print them

    @cached_property
    def _keys(self) -> tuple[list[str], str, str, str]:
        """The normalised forms, computed once per shop (matching runs for every invoice and rule)."""
        lines = [f" {k} " for k in (normalize_address(line) for line in self.lines) if k]
        return (
            lines,
            normalize_address(self.street),
            normalize_address(self.postal_code),
            normalize_address(self.city),
        )

    def matches(self, address: Address | None) -> bool:
        return self.matches_text(padded_address(address))

    def matches_text(self, padded: str) -> bool:
        """:meth:`matches` on an address already normalised by :func:`padded_address` (once per invoice,
        when it is compared with many shops)."""
        if not padded:
            return False
        lines, street, postal, city = self._keys
        if any(key in padded for key in lines):
            return True
        if not street or f" {street} " not in padded:
            return False
        return (not postal or f" {postal} " in padded) and (not city or f" {city} " in padded)


def pattern_matches(pattern: str, value: str | None) -> bool:
    """``pattern`` against an identifier: ``re:<regex>``, a glob (``WZ/12/*``), or an exact value; case and
    surrounding spaces are ignored."""
    if not value or not pattern.strip():
        return False
    pattern, value = pattern.strip(), value.strip()
    if pattern.startswith("re:"):
        try:
            return re.fullmatch(pattern[3:], value, re.IGNORECASE) is not None
        except re.error:
            return False
    return fnmatch.fnmatchcase(value.upper(), pattern.upper())


def any_pattern_matches(patterns: Iterable[str], values: Iterable[str]) -> str | None:
    """The first value matched by any pattern (None when nothing matches)."""
    values = list(values)
    for pattern in patterns:
        for value in values:
            if pattern_matches(pattern, value):
                return value
    return None


def delivery_identifiers(invoice: Invoice) -> list[str]:
    """Every delivery-side identifier of an invoice: WZ numbers, order numbers, customer numbers."""
    return [*invoice.delivery_note_numbers, *invoice.order_numbers, *invoice.customer_numbers]


def _receiving_parties(invoice: Invoice) -> list[Party]:
    """The buyer and the third parties in a recipient role (not e.g. a factor or the original entity)."""
    return [invoice.buyer, *(p for p in invoice.third_parties if p.role in RECIPIENT_ROLES)]


def invoice_glns(invoice: Invoice) -> list[str]:
    """GLNs of the buyer and of recipient third parties, on their main and correspondence addresses."""
    found: list[str] = []
    for party in _receiving_parties(invoice):
        for address in (party.address, party.correspondence_address):
            if address and address.gln and address.gln not in found:
                found.append(address.gln)
    return found


def invoice_addresses(invoice: Invoice) -> list[Address]:
    """Buyer and delivery-side addresses (buyer, correspondence, recipients among third parties)."""
    out: list[Address] = []
    for party in _receiving_parties(invoice):
        out += [a for a in (party.address, party.correspondence_address) if a is not None]
    return out


VALID, INVALID, REVIEW = "valid", "invalid", "review"


@dataclass
class Validity:
    result: str  # valid | invalid | review
    reasons: list[str] = field(default_factory=list)
    #: the reasons as (stable key, values), in the same order, for programs and translations
    items: list[tuple[str, dict]] = field(default_factory=list)

    def add(self, key: str, text: str, **params: object) -> None:
        self.reasons.append(text)
        self.items.append((key, params))


def _is_company(party: Party, nip: str) -> bool:
    return party.nip == nip or bool(party.internal_id and party.internal_id.split("-")[0] == nip)


def check_addressed_to(
    invoice: Invoice,
    nip: str,
    *,
    company_name: str | Iterable[str] | None = None,
    accepted_roles: Iterable[int] = RECIPIENT_ROLES,
) -> Validity:
    """Is a purchase invoice really addressed to the company with ``nip``?

    Valid: the buyer's NIP is the company's, or the company is a third party in an accepted role. Invalid:
    the buyer is another NIP and the company is not an accepted third party. To review: no Polish NIP to
    decide on, or the buyer's name has nothing in common with any of the company's names.
    """
    roles = set(accepted_roles)
    found = Validity(REVIEW)
    if invoice.buyer.nip == nip:
        found.add("buyer-is-company", f"buyer NIP {nip} is the company's", nip=nip)
        result = VALID
    else:
        as_third = [p for p in invoice.third_parties if _is_company(p, nip)]
        accepted = [p for p in as_third if p.role in roles]
        if accepted:
            result = VALID
            found.add(
                "third-party",
                f"the company is a third party with role {accepted[0].role}",
                role=accepted[0].role,
            )
            if invoice.buyer.nip:
                found.add("buyer-nip", f"buyer NIP is {invoice.buyer.nip}", nip=invoice.buyer.nip)
        elif as_third:
            result = INVALID
            found.add(
                "third-party-not-recipient",
                f"the company is a third party only with role {as_third[0].role}, not as a recipient",
                role=as_third[0].role,
            )
        elif invoice.buyer.nip:
            result = INVALID
            found.add(
                "other-buyer",
                f"addressed to NIP {invoice.buyer.nip}, not to {nip}",
                buyer=invoice.buyer.nip,
                nip=nip,
            )
        else:
            result = REVIEW
            kind, value = invoice.buyer.identifier
            found.add(
                "no-polish-nip",
                f"the buyer has no Polish NIP ({kind} {value or '-'})",
                kind=kind,
                value=value or "-",
            )
    names = [company_name] if isinstance(company_name, str) else [n for n in company_name or () if n]
    if result == VALID and names and invoice.buyer.nip == nip:
        theirs = normalize_name(invoice.buyer.name)
        known = [normalize_name(n) for n in names]
        if theirs and all(ours and not ours & theirs for ours in known):
            result = REVIEW
            found.add(
                "buyer-name",
                f"the buyer's name {invoice.buyer.name!r} is none of the company's names ({', '.join(names)})",
                name=invoice.buyer.name,
                names=", ".join(names),
            )
    found.result = result
    return found
