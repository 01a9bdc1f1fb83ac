"""A person reads an invoice, not XML: FA(3) invoices and KSeF's UPO rendered as safe HTML, labelled in Polish.

``invoice_html(xml, ksef_number=..., environment=...)`` renders any FA(3) invoice (FA(2) reads the same) in the
order of the Ministry of Finance's official visualisation: header (number, kind, KSeF number), corrected
invoice data, parties (seller Podmiot1, buyer Podmiot2, third parties Podmiot3, authorised subject), details
(dates, place, currency), lines (FaWiersz), order (Zamowienie), VAT summary per rate (P_13_x / P_14_x), total
(P_15), annotations (Adnotacje) in words, additional information (DodatkowyOpis), settlement (Rozliczenie),
payment (Platnosc: due dates, method, bank accounts), transaction terms, footer (Stopka), the attachment
(Zalacznik), and the KOD I verification QR code with its label (the KSeF number, or ``OFFLINE`` while none).
``upo_html(xml)`` renders KSeF's official receipt (UPO v4-x) of one invoice or of a session.

Safety: every value taken from the XML is HTML-escaped where it is put into the page (the builder below escapes
any text that was not built by it), no script, no event attribute, no link taken from the XML (a payment link
is shown as text); the only link is the KOD I verification address built here; the QR code is an embedded PNG
(``data:image/png;base64``). Styles are inline, so the fragment looks the same in a sanitised HTML field, a
report and a standalone page, with no stylesheet to ship. Layout is tables only, which PDF engines print well.

Both functions return an HTML fragment (one ``<div>``); ``page=True`` returns a whole HTML document instead.
Bad input raises :class:`VisualisationError` with a sentence saying what is wrong.

Run ``python -m ksefnet_core.visualise FILE.xml > out.html`` to look at an invoice or UPO in a browser.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from html import escape
from typing import TypeAlias

from lxml import etree

from . import fa3, qr
from .environments import Environment
from .xmlsafe import UnsafeXmlError, parse_bytes


class VisualisationError(ValueError):
    """The document cannot be rendered (not an invoice or UPO, not well-formed, unsafe XML).

    ``issues``: what is wrong, as :class:`~ksefnet_core.fa3.ValidationIssue` (stable keys and values, for
    translations); the message is the English text."""

    def __init__(self, message: str, issues: list[fa3.ValidationIssue] | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues or [])


# -- a tiny HTML builder that escapes everything it was not given as HTML ------------------------------------
class Html(str):
    """Text that is HTML built by this module. Any other text put into a fragment is escaped."""

    __slots__ = ()


Content = str | Html | None | Iterable["Content"]


def esc(value: object) -> Html:
    """``value`` as HTML: text is escaped (``<`` ``>`` ``&`` and both quotes), HTML built here is kept."""
    if isinstance(value, Html):
        return value
    return Html(escape(str(value), quote=True))


def _join(children: Iterable[Content]) -> Html:
    out: list[str] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, str):
            out.append(esc(child))
        else:
            out.append(_join(child))
    return Html("".join(out))


_STYLE = {
    "root": "font-family: 'DejaVu Sans', Arial, Helvetica, sans-serif; font-size: 12px; color: #1f1f1f; "
    "line-height: 1.35; max-width: 1100px",
    "brand": "font-size: 16px; font-weight: bold; color: #1f1f1f",
    "brand-e": "font-size: 16px; font-weight: bold; color: #c8102e",
    "number": "font-size: 20px; font-weight: bold; margin: 0",
    "kind": "font-size: 14px; font-weight: bold; margin: 2px 0",
    "muted": "color: #5f5f5f",
    "h2": "font-size: 14px; font-weight: bold; border-bottom: 2px solid #5f5f5f; margin: 16px 0 6px 0; "
    "padding: 0 0 2px 0",
    "h3": "font-size: 12px; font-weight: bold; margin: 8px 0 3px 0",
    "p": "margin: 1px 0",
    "label": "color: #5f5f5f",
    "table": "width: 100%; border-collapse: collapse; border-color: #b5b5b5; margin: 3px 0 6px 0",
    "layout": "width: 100%; border-collapse: collapse",
    "cell": "vertical-align: top; padding: 0 14px 0 0",
    "th": "border: 1px solid #b5b5b5; background-color: #eeeeee; padding: 3px 5px; text-align: left; "
    "font-weight: bold; vertical-align: bottom",
    "sum": "border: 1px solid #b5b5b5; padding: 3px 5px; vertical-align: top; text-align: right; "
    "white-space: nowrap; font-weight: bold",
    "total": "font-size: 14px; font-weight: bold; margin: 6px 0; text-align: right",
    "text": "white-space: pre-line; margin: 2px 0",
    "warn": "border: 1px solid #c8102e; color: #c8102e; padding: 4px 6px; margin: 6px 0",
    "qr": "vertical-align: top; padding: 0 14px 0 0; width: 1%",
}
# Written without blanks (``a:b;c:d``): a table cell carries its style, and an invoice may have 10 000 lines.
_STYLE = {name: re.sub(r"\s*([:;,])\s*", r"\1", css) for name, css in _STYLE.items()}


def tag(name: str, *children: Content, s: str | None = None, **attrs: str | None) -> Html:
    """``<name attrs>children</name>``; ``s`` names an inline style of :data:`_STYLE`.

    Tag and attribute names come from this module's code only; attribute values and children are escaped.
    """
    if s:
        attrs["style"] = _STYLE[s]
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None
    )
    if name in ("img", "br"):
        return Html(f"<{name}{rendered}/>")
    return Html(f"<{name}{rendered}>{_join(children)}</{name}>")


def _kv(label: str, value: Content) -> Html | None:
    """``Label: value`` on a line of its own, or nothing when there is no value."""
    if value is None or value == "" or value == []:
        return None
    return tag("p", tag("span", label + ": ", s="label"), value, s="p")


def _section(title: str, *content: Content) -> Html | None:
    body = _join(content)
    if not body:
        return None
    return tag("div", tag("div", title, s="h2"), body)


def _columns(*cells: Content) -> Html | None:
    """Side by side (a layout table: PDF engines do not all know flexbox)."""
    present = [c for c in cells if c]
    if not present:
        return None
    width = f"{100 // len(present)}%"
    return tag(
        "table",
        tag("tr", [tag("td", c, s="cell", width=width) for c in present]),
        s="layout",
    )


Cell = tuple[Content, bool]  # (content, is a number: right-aligned)


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Cell]], footer: Sequence[Cell] = ()
) -> Html | None:
    """A table of ``rows`` (nothing when there are none); a column empty in every row is left out."""
    if not rows:
        return None
    width = max(len(headers), len(footer), *(len(row) for row in rows))  # an attachment's rows may be ragged
    headers = [*headers, *[""] * (width - len(headers))]
    rows = [[*row, *[(None, False)] * (width - len(row))] for row in rows]
    footer = [*footer, *[("", False)] * (width - len(footer))] if footer else ()
    keep = [i for i in range(width) if any(row[i][0] not in (None, "") for row in rows)]
    head = tag("tr", [tag("th", headers[i], s="th") for i in keep])
    # Body cells take their borders and padding from the table's attributes, not a style each: an invoice
    # may have 10 000 lines, and every byte of a cell is repeated that many times.
    body = [
        tag(
            "tr",
            [_cell(row[i][0]) if not row[i][1] else _cell(row[i][0], numeric=True) for i in keep],
            valign="top",
        )
        for row in rows
    ]
    foot = (
        tag("tr", [tag("td", footer[i][0], s="sum" if footer[i][1] else "th") for i in keep])
        if footer
        else None
    )
    return tag(
        "table", head, body, foot, s="table", border="1", rules="all", cellpadding="4", cellspacing="0"
    )


def _cell(content: Content, *, numeric: bool = False) -> Html:
    return tag("td", content, align="right", nowrap="nowrap") if numeric else tag("td", content)


# -- reading the XML ------------------------------------------------------------------------------------------
_find, _findall, _text = fa3._find, fa3._findall, fa3._text
El: TypeAlias = etree._Element


def _raw(el: El | None, path: str) -> str | None:
    """Text of ``path`` with its line breaks kept (free texts such as the footer), or None."""
    found = _find(el, path)
    if found is None or found.text is None:
        return None
    value = "\n".join(" ".join(line.split()) for line in found.text.strip().splitlines())
    return value or None


def _flag(el: El | None, path: str) -> bool:
    """A "1 = yes" marker of the schema (TWybor1, TWybor1_2) is set."""
    return _text(el, path) == "1"


def _number(text: str | None, *, money: bool = True) -> str | None:
    """Polish notation: ``1 234,50`` (no-break space between thousands, comma before decimals).

    Amounts get at least two decimals; quantities and rates keep the decimals they have. Text that is not a
    number is shown as it is.
    """
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return text
    if not value.is_finite():
        return text
    exponent = value.as_tuple().exponent
    if money and isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    digits = f"{abs(value):f}"
    whole, _, fraction = digits.partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return ("-" if value < 0 else "") + "\u00a0".join(groups) + ("," + fraction if fraction else "")


def _money(text: str | None, currency: str | None = None) -> str | None:
    amount = _number(text)
    return f"{amount} {currency}" if amount is not None and currency else amount


def _dec(text: str | None) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _datetime(text: str | None) -> str | None:
    """An ISO date-time shown as Polish time ``YYYY-MM-DD HH:MM:SS``; anything else as it is."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is not None:
        try:
            from zoneinfo import ZoneInfo

            moment = moment.astimezone(ZoneInfo("Europe/Warsaw"))
        except Exception:  # no time zone database here: keep the offset that was given
            return moment.isoformat(sep=" ", timespec="seconds")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    """Polish country names from the official code list shipped with the FA schemas (KodyKrajow)."""
    path = fa3.SCHEMA_DIR / "bazowe" / "KodyKrajow_v10-0E.xsd"
    ns = {"xsd": "http://www.w3.org/2001/XMLSchema"}
    names: dict[str, str] = {}
    tree = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False))
    for enum in tree.iterfind(".//xsd:enumeration", ns):
        doc = enum.findtext("xsd:annotation/xsd:documentation", namespaces=ns)
        if doc:
            words = [w.capitalize() if len(w) > 2 else w.lower() for w in doc.strip().split()]
            names[enum.get("value", "")] = " ".join(words)[:1].upper() + " ".join(words)[1:]
    return names


def _country(code: str | None) -> str | None:
    if not code:
        return None
    name = _country_names().get(code)
    return f"{name} ({code})" if name else code


# -- code lists of the FA(3) schema, in Polish ---------------------------------------------------------------
INVOICE_KIND_LABELS = {
    "VAT": "Faktura podstawowa",
    "KOR": "Faktura korygująca",
    "ZAL": "Faktura zaliczkowa",
    "ROZ": "Faktura rozliczeniowa",
    "UPR": "Faktura uproszczona",
    "KOR_ZAL": "Faktura korygująca fakturę zaliczkową",
    "KOR_ROZ": "Faktura korygująca fakturę rozliczeniową",
}
PAYMENT_METHODS = {
    "1": "Gotówka",
    "2": "Karta",
    "3": "Bon",
    "4": "Czek",
    "5": "Kredyt",
    "6": "Przelew",
    "7": "Mobilna",
}
THIRD_PARTY_ROLES = {
    "1": "Faktor",
    "2": "Odbiorca",
    "3": "Podmiot pierwotny",
    "4": "Dodatkowy nabywca",
    "5": "Wystawca faktury",
    "6": "Dokonujący płatności",
    "7": "Jednostka samorządu terytorialnego - wystawca",
    "8": "Jednostka samorządu terytorialnego - odbiorca",
    "9": "Członek grupy VAT - wystawca",
    "10": "Członek grupy VAT - odbiorca",
    "11": "Pracownik",
}
AUTHORIZED_ROLES = {
    "1": "Organ egzekucyjny (art. 106c pkt 1 ustawy)",
    "2": "Komornik sądowy (art. 106c pkt 2 ustawy)",
    "3": "Przedstawiciel podatkowy (art. 18a - 18d ustawy)",
}
TAXPAYER_STATUS = {
    "1": "Stan likwidacji",
    "2": "Postępowanie restrukturyzacyjne",
    "3": "Stan upadłości",
    "4": "Przedsiębiorstwo w spadku",
}
CORRECTION_EFFECTS = {
    "1": "Korekta skutkująca w dacie ujęcia faktury pierwotnej",
    "2": "Korekta skutkująca w dacie wystawienia faktury korygującej",
    "3": "Korekta skutkująca w dacie innej, w tym gdy dla różnych pozycji faktury korygującej daty te są różne",
}
OWN_BANK_ACCOUNT = {
    "1": "Rachunek banku lub SKOK służący do rozliczeń z tytułu nabywanych wierzytelności pieniężnych",
    "2": "Rachunek banku lub SKOK wykorzystywany do pobrania należności od nabywcy i przekazania jej dostawcy",
    "3": "Rachunek banku lub SKOK prowadzony w ramach gospodarki własnej, niebędący rachunkiem rozliczeniowym",
}
TRANSPORT_KINDS = {
    "1": "Transport morski",
    "2": "Transport kolejowy",
    "3": "Transport drogowy",
    "4": "Transport lotniczy",
    "5": "Przesyłka pocztowa",
    "7": "Stałe instalacje przesyłowe",
    "8": "Żegluga śródlądowa",
}
CARGO_KINDS = {
    "1": "Bańka",
    "2": "Beczka",
    "3": "Butla",
    "4": "Karton",
    "5": "Kanister",
    "6": "Klatka",
    "7": "Kontener",
    "8": "Kosz/koszyk",
    "9": "Łubianka",
    "10": "Opakowanie zbiorcze",
    "11": "Paczka",
    "12": "Pakiet",
    "13": "Paleta",
    "14": "Pojemnik",
    "15": "Pojemnik do ładunków masowych stałych",
    "16": "Pojemnik do ładunków masowych w postaci płynnej",
    "17": "Pudełko",
    "18": "Puszka",
    "19": "Skrzynia",
    "20": "Worek",
}
#: VAT summary rows: (field suffix of P_13_x / P_14_x, rate as the official visualisation names it)
VAT_SUMMARY = (
    ("1", "23% lub 22%"),
    ("2", "8% lub 7%"),
    ("3", "5%"),
    ("4", "4% lub 3% (ryczałt dla taksówek osobowych)"),
    ("5", "OSS (procedura szczególna z działu XII rozdziału 6a ustawy)"),
    ("6_1", "0% - sprzedaż krajowa"),
    ("6_2", "0% - wewnątrzwspólnotowa dostawa towarów (WDT)"),
    ("6_3", "0% - eksport towarów"),
    ("7", "zwolnione od podatku"),
    ("8", "np - poza terytorium kraju (z wyłączeniem art. 100 ust. 1 pkt 4 ustawy)"),
    ("9", "np - usługi z art. 100 ust. 1 pkt 4 ustawy"),
    ("10", "odwrotne obciążenie"),
    ("11", "marża"),
)


def _rate(text: str | None) -> str | None:
    """A P_12 rate as read on an invoice: ``23%``, ``0% KR``, ``zw``, ``oo``, ``np I``."""
    if not text:
        return None
    head, _, rest = text.partition(" ")
    if head.isdigit():
        return f"{head}%" + (f" {rest}" if rest else "")
    return text


# -- invoice sections -----------------------------------------------------------------------------------------
def _address_lines(el: El | None) -> list[Html]:
    if el is None:
        return []
    lines = [_text(el, "AdresL1"), _text(el, "AdresL2"), _country(_text(el, "KodKraju"))]
    out = [tag("p", line, s="p") for line in lines if line]
    gln = _text(el, "GLN")
    if gln:
        out.append(_kv("GLN", gln) or Html(""))
    return out


def _identification(el: El | None) -> list[Html | None]:
    ident = _find(el, "DaneIdentyfikacyjne")
    if ident is None:
        return []
    eu = " ".join(p for p in (_text(ident, "KodUE"), _text(ident, "NrVatUE")) if p) or None
    other = " ".join(p for p in (_text(ident, "KodKraju"), _text(ident, "NrID")) if p) or None
    return [
        _kv("NIP", _text(ident, "NIP")),
        _kv("Identyfikator wewnętrzny", _text(ident, "IDWew")),
        _kv("Numer VAT-UE", eu),
        _kv("Identyfikator podatkowy inny", other),
        tag("p", "Brak identyfikatora", s="p") if _find(ident, "BrakID") is not None else None,
        _kv("Nazwa", _text(ident, "Nazwa")),
    ]


def _contacts(el: El | None, email: str = "Email", phone: str = "Telefon") -> list[Html | None]:
    out: list[Html | None] = []
    for contact in _findall(el, "DaneKontaktowe"):
        out += [_kv("E-mail", _text(contact, email)), _kv("Tel.", _text(contact, phone))]
    return out


def _party(title: str, el: El | None, *, extra: Sequence[Html | None] = ()) -> Html | None:
    if el is None:
        return None
    address = _address_lines(_find(el, "Adres"))
    correspondence = _address_lines(_find(el, "AdresKoresp"))
    prefix = _text(el, "PrefiksPodatnika")
    return tag(
        "div",
        tag("div", title, s="h3"),
        _kv("Prefiks VAT", prefix),
        _identification(el),
        _kv("Numer EORI", _text(el, "NrEORI")),
        [tag("p", tag("span", "Adres:", s="label"), s="p"), address] if address else None,
        [tag("p", tag("span", "Adres do korespondencji:", s="label"), s="p"), correspondence]
        if correspondence
        else None,
        _contacts(el),
        _kv("Status podatnika", TAXPAYER_STATUS.get(_text(el, "StatusInfoPodatnika") or "")),
        _kv("Numer klienta", _text(el, "NrKlienta")),
        _kv("Identyfikator nabywcy", _text(el, "IDNabywcy")),
        list(extra),
    )


def _yes_no(el: El | None, path: str) -> str | None:
    value = _text(el, path)
    return {"1": "TAK", "2": "NIE"}.get(value or "")


def _parties(root: El) -> Html | None:
    buyer = _find(root, "Podmiot2")
    buyer_extra = [
        _kv("Faktura dotyczy jednostki podrzędnej JST", _yes_no(buyer, "JST")),
        _kv("Faktura dotyczy członka grupy VAT", _yes_no(buyer, "GV")),
    ]
    main = _columns(
        _party("Sprzedawca", _find(root, "Podmiot1")), _party("Nabywca", buyer, extra=buyer_extra)
    )
    others: list[Html | None] = []
    for i, el in enumerate(_findall(root, "Podmiot3"), start=1):
        role = THIRD_PARTY_ROLES.get(_text(el, "Rola") or "")
        if _flag(el, "RolaInna"):
            role = "Inny podmiot" + (f": {_text(el, 'OpisRoli')}" if _text(el, "OpisRoli") else "")
        share = _text(el, "Udzial")
        others.append(
            _party(
                f"Podmiot inny {i}",
                el,
                extra=[
                    _kv("Rola", role),
                    _kv("Udział", f"{_number(share, money=False)}%" if share else None),
                ],
            )
        )
    authorised = _find(root, "PodmiotUpowazniony")
    if authorised is not None:
        others.append(
            tag(
                "div",
                _party("Podmiot upoważniony", authorised),
                _contacts(authorised, "EmailPU", "TelefonPU"),
                _kv("Rola", AUTHORIZED_ROLES.get(_text(authorised, "RolaPU") or "")),
            )
        )
    rows = [_columns(*others[i : i + 2]) for i in range(0, len(others), 2)]
    return _section("Podmioty", main, rows)


def _header(invoice: fa3.Invoice, fa: El, ksef_number: str | None) -> Html:
    kind = INVOICE_KIND_LABELS.get(invoice.kind, invoice.kind)
    if invoice.kind == "KOR" and _text(fa, "OkresFaKorygowanej"):
        kind = "Faktura korygująca zbiorcza (rabat)"
    brand = tag(
        "div",
        tag("span", "Krajowy System ", s="brand"),
        tag("span", "e", s="brand-e"),
        tag("span", "-Faktur", s="brand"),
    )
    right = tag(
        "div",
        tag("div", "Numer faktury", s="muted"),
        tag("div", invoice.number, s="number"),
        tag("div", kind, s="kind"),
        tag("div", tag("span", "Numer KSeF: ", s="label"), ksef_number) if ksef_number else None,
        align="right",
    )
    return tag("table", tag("tr", tag("td", brand, s="cell"), tag("td", right, s="cell")), s="layout")


def _corrected(invoice: fa3.Invoice, fa: El) -> Html | None:
    if not invoice.is_correction and not _findall(fa, "DaneFaKorygowanej"):
        return None
    items: list[Content] = [
        _kv("Przyczyna korekty", _text(fa, "PrzyczynaKorekty")),
        _kv("Typ skutku korekty", CORRECTION_EFFECTS.get(_text(fa, "TypKorekty") or "")),
        _kv("Okres, którego dotyczy rabat", _text(fa, "OkresFaKorygowanej")),
        _kv("Poprawny numer faktury korygowanej", _text(fa, "NrFaKorygowany")),
    ]
    rows: list[Sequence[Cell]] = []
    for i, el in enumerate(_findall(fa, "DaneFaKorygowanej"), start=1):
        ksef = _text(el, "NrKSeFFaKorygowanej") or ("wystawiona poza KSeF" if _flag(el, "NrKSeFN") else None)
        rows.append(
            [
                (str(i), True),
                (_text(el, "NrFaKorygowanej"), False),
                (_text(el, "DataWystFaKorygowanej"), False),
                (ksef, False),
            ]
        )
    items.append(
        _table(
            ["Lp.", "Numer faktury korygowanej", "Data wystawienia", "Numer KSeF faktury korygowanej"], rows
        )
    )
    seller_before = _find(fa, "Podmiot1K")
    buyers_before = _findall(fa, "Podmiot2K")
    items.append(
        _columns(
            _party("Sprzedawca na fakturze korygowanej", seller_before),
            *[_party("Nabywca na fakturze korygowanej", el) for el in buyers_before],
        )
    )
    before = _text(fa, "P_15ZK")
    if before:
        label = "Kwota zapłaty przed korektą" if invoice.kind == "KOR_ZAL" else "Kwota przed korektą"
        items.append(_kv(label, _money(before, invoice.currency)))
    items.append(_kv("Kurs waluty przed korektą", _number(_text(fa, "KursWalutyZK"), money=False)))
    return _section("Dane faktury korygowanej", items)


def _details(invoice: fa3.Invoice, fa: El) -> Html | None:
    period = invoice.period
    advance_numbers = [
        _text(el, "NrKSeFFaZaliczkowej") or _text(el, "NrFaZaliczkowej")
        for el in _findall(fa, "FakturaZaliczkowa")
    ]
    partial = [
        [
            (_text(el, "P_6Z"), False),
            (_money(_text(el, "P_15Z"), invoice.currency), True),
            (_number(_text(el, "KursWalutyZW"), money=False), True),
        ]
        for el in _findall(fa, "ZaliczkaCzesciowa")
    ]
    left = tag(
        "div",
        _kv("Data wystawienia", invoice.issue_date.isoformat()),
        _kv("Miejsce wystawienia", invoice.place_of_issue),
        _kv(
            "Data dokonania lub zakończenia dostawy towarów lub wykonania usługi",
            invoice.sale_date.isoformat() if invoice.sale_date else None,
        ),
        _kv(
            "Okres, którego dotyczy faktura",
            f"od {period[0].isoformat()} do {period[1].isoformat()}" if period else None,
        ),
    )
    right = tag(
        "div",
        _kv("Kod waluty", invoice.currency),
        _kv("Kurs waluty", _number(_text(fa, "KursWalutyZ"), money=False)),
        _kv("Numery dokumentów magazynowych WZ", ", ".join(invoice.delivery_note_numbers) or None),
        _kv("Numery faktur zaliczkowych", ", ".join(n for n in advance_numbers if n) or None),
    )
    return _section(
        "Szczegóły",
        _columns(left, right),
        _table(["Data otrzymania płatności", "Kwota płatności", "Kurs waluty"], partial),
    )


#: line table columns: (header, element of FaWiersz, element of ZamowienieWiersz, kind); kind is "text",
#: "money", "qty", "rate" or "pct". A column shows when a row has a value (the name always).
_LINE_COLUMNS = (
    ("Nazwa towaru lub usługi", "P_7", "P_7Z", "text"),
    ("Indeks", "Indeks", "IndeksZ", "text"),
    ("GTIN", "GTIN", "GTINZ", "text"),
    ("PKWiU", "PKWiU", "PKWiUZ", "text"),
    ("CN", "CN", "CNZ", "text"),
    ("PKOB", "PKOB", "PKOBZ", "text"),
    ("Data dostawy / wykonania", "P_6A", None, "text"),
    ("Cena jedn. netto", "P_9A", "P_9AZ", "money"),
    ("Cena jedn. brutto", "P_9B", None, "money"),
    ("Ilość", "P_8B", "P_8BZ", "qty"),
    ("Miara", "P_8A", "P_8AZ", "text"),
    ("Rabat", "P_10", None, "money"),
    ("Stawka podatku", "P_12", "P_12Z", "rate"),
    ("Stawka podatku OSS", "P_12_XII", "P_12Z_XII", "pct"),
    ("Wartość sprzedaży netto", "P_11", "P_11NettoZ", "money"),
    ("Wartość sprzedaży brutto", "P_11A", None, "money"),
    ("Kwota podatku", "P_11Vat", "P_11VatZ", "money"),
    ("Kwota akcyzy", "KwotaAkcyzy", "KwotaAkcyzyZ", "money"),
    ("GTU", "GTU", "GTUZ", "text"),
    ("Procedura", "Procedura", "ProceduraZ", "text"),
    ("Kurs waluty", "KursWaluty", None, "qty"),
)
_INVOICE_LINE = tuple((h, line, kind) for h, line, _order, kind in _LINE_COLUMNS)
_ORDER_LINE = tuple((h, order, kind) for h, _line, order, kind in _LINE_COLUMNS if order)
_FORMATTERS: dict[str, Callable[[str | None], str | None]] = {
    "text": lambda v: v,
    "money": _number,
    "qty": lambda v: _number(v, money=False),
    "rate": _rate,
    "pct": lambda v: f"{_number(v, money=False)}%" if v else None,
}


def _lines_table(
    rows: list[El], number_el: str, columns: Sequence[tuple[str, str, str]], before_el: str
) -> Html | None:
    if not rows:
        return None
    used = [c for i, c in enumerate(columns) if i == 0 or any(_text(r, c[1]) for r in rows)]
    corrections = any(_flag(r, before_el) for r in rows)
    headers = ["Lp.", *(c[0] for c in used), *(["Stan"] if corrections else [])]
    table_rows: list[list[Cell]] = []
    for i, row in enumerate(rows, start=1):
        cells: list[Cell] = [(_text(row, number_el) or str(i), True)]
        for _header_text, name, kind in used:
            value = _FORMATTERS[kind](_text(row, name))
            if name in ("P_12", "P_12Z") and _flag(row, "P_12_Zal_15" if name == "P_12" else "P_12Z_Zal_15"):
                value = f"{value or ''} (zał. 15)"
            cells.append((value, kind in ("money", "qty")))
        if corrections:
            cells.append(("przed korektą" if _flag(row, before_el) else "po korekcie", False))
        table_rows.append(cells)
    return _table(headers, table_rows)


_TOTAL_LABELS = {
    "ZAL": "Otrzymana kwota zapłaty (zaliczki)",
    "ROZ": "Kwota pozostała do zapłaty",
    "KOR": "Korekta kwoty należności ogółem",
    "KOR_ZAL": "Korekta kwoty zapłaty (zaliczki)",
    "KOR_ROZ": "Korekta kwoty pozostałej do zapłaty",
}


def _lines(invoice: fa3.Invoice, fa: El) -> Html | None:
    table = _lines_table(_findall(fa, "FaWiersz"), "NrWierszaFa", _INVOICE_LINE, "StanPrzed")
    rows = _findall(fa, "FaWiersz")
    if any(_text(r, "P_9B") or _text(r, "P_11A") for r in rows):
        basis = f"Faktura wystawiona w cenach brutto, w walucie {invoice.currency}"
    elif any(_text(r, "P_9A") or _text(r, "P_11") for r in rows):
        basis = f"Faktura wystawiona w cenach netto, w walucie {invoice.currency}"
    else:
        basis = f"Kwoty w walucie {invoice.currency}"
    total = tag(
        "p",
        _TOTAL_LABELS.get(invoice.kind, "Kwota należności ogółem") + ": ",
        _money(_text(fa, "P_15") or "0", invoice.currency),
        s="total",
    )
    return _section(
        "Pozycje",
        tag("p", basis, s="muted") if table else None,
        table,
        total,
    )


def _order(invoice: fa3.Invoice, fa: El) -> Html | None:
    order = _find(fa, "Zamowienie")
    if order is None:
        return None
    return _section(
        "Zamówienie lub umowa",
        _kv(
            "Wartość zamówienia lub umowy z uwzględnieniem kwoty podatku",
            _money(_text(order, "WartoscZamowienia"), invoice.currency),
        ),
        _lines_table(_findall(order, "ZamowienieWiersz"), "NrWierszaZam", _ORDER_LINE, "StanPrzedZ"),
    )


def _vat_summary(invoice: fa3.Invoice, fa: El) -> Html | None:
    rows: list[Sequence[Cell]] = []
    foreign = any(_text(fa, f"P_14_{n}W") for n in ("1", "2", "3", "4"))
    net_sum = vat_sum = Decimal(0)
    for suffix, label in VAT_SUMMARY:
        net_text, vat_text = _text(fa, f"P_13_{suffix}"), _text(fa, f"P_14_{suffix}")
        if net_text is None and vat_text is None:
            continue
        net, vat = _dec(net_text), _dec(vat_text)
        net_sum += net
        vat_sum += vat
        row: list[Cell] = [
            (str(len(rows) + 1), True),
            (label, False),
            (_number(str(net)), True),
            (_number(str(vat)) if vat_text is not None else None, True),
            (_number(str(net + vat)), True),
        ]
        if foreign:
            row.append((_number(_text(fa, f"P_14_{suffix}W")), True))
        rows.append(row)
    headers = ["Lp.", "Stawka podatku", "Kwota netto", "Kwota podatku", "Kwota brutto"]
    footer: list[Cell] = [
        ("", False),
        ("Razem", False),
        (_number(str(net_sum)), True),
        (_number(str(vat_sum)), True),
    ]
    footer.append((_number(str(net_sum + vat_sum)), True))
    if foreign:
        headers.append("Kwota podatku PLN")
        footer.append(("", False))
    return _section(
        "Podsumowanie stawek podatku",
        tag("p", f"Kwoty w walucie {invoice.currency}", s="muted") if rows else None,
        _table(headers, rows, footer if len(rows) > 1 else ()),
    )


_NEW_VEHICLE_FIELDS = (
    ("Data dopuszczenia nowego środka transportu do użytku", "P_22A"),
    ("Numer wiersza faktury", "P_NrWierszaNST"),
    ("Marka", "P_22BMK"),
    ("Model", "P_22BMD"),
    ("Kolor", "P_22BK"),
    ("Numer rejestracyjny", "P_22BNR"),
    ("Rok produkcji", "P_22BRP"),
    ("Przebieg pojazdu", "P_22B"),
    ("Numer VIN", "P_22B1"),
    ("Numer nadwozia", "P_22B2"),
    ("Numer podwozia", "P_22B3"),
    ("Numer ramy", "P_22B4"),
    ("Typ", "P_22BT"),
    ("Liczba godzin roboczych używania (jednostka pływająca)", "P_22C"),
    ("Numer kadłuba", "P_22C1"),
    ("Liczba godzin roboczych używania (statek powietrzny)", "P_22D"),
    ("Numer fabryczny", "P_22D1"),
)


def _annotations(fa: El) -> Html | None:
    notes = _find(fa, "Adnotacje")
    if notes is None:
        return None
    items: list[Content] = []

    def line(text: str) -> None:
        items.append(tag("p", "• " + text, s="p"))

    if _flag(notes, "P_16"):
        line("Metoda kasowa")
    if _flag(notes, "P_17"):
        line("Samofakturowanie")
    if _flag(notes, "P_18"):
        line("Odwrotne obciążenie")
    if _flag(notes, "P_18A"):
        line("Mechanizm podzielonej płatności")
    exemption = _find(notes, "Zwolnienie")
    if _flag(exemption, "P_19"):
        line(
            "Dostawa towarów lub świadczenie usług zwolnionych od podatku na podstawie art. 43 ust. 1, art. 113 "
            "ust. 1 i 9 ustawy albo przepisów wydanych na podstawie art. 82 ust. 3 ustawy lub innych przepisów"
        )
        items += [
            _kv("Przepis ustawy albo aktu wydanego na podstawie ustawy", _text(exemption, "P_19A")),
            _kv("Przepis dyrektywy 2006/112/WE", _text(exemption, "P_19B")),
            _kv("Inna podstawa prawna zwolnienia", _text(exemption, "P_19C")),
        ]
    vehicles = _find(notes, "NoweSrodkiTransportu")
    if _flag(vehicles, "P_22"):
        line("Wewnątrzwspólnotowa dostawa nowych środków transportu")
        vat22 = _text(vehicles, "P_42_5")
        if vat22 in ("1", "2"):
            line(
                "Istnieje obowiązek wystawienia dokumentu VAT-22"
                if vat22 == "1"
                else "Nie istnieje obowiązek wystawienia dokumentu VAT-22"
            )
        for vehicle in _findall(vehicles, "NowySrodekTransportu"):
            items.append(
                tag("div", [_kv(label, _text(vehicle, name)) for label, name in _NEW_VEHICLE_FIELDS])
            )
    if _flag(notes, "P_23"):
        line("Procedura trójstronna uproszczona (art. 135 ust. 1 pkt 4 lit. b i c ustawy)")
    margin = _find(notes, "PMarzy")
    if _flag(margin, "P_PMarzy"):
        kinds = [
            label
            for name, label in (
                ("P_PMarzy_2", "biura podróży"),
                ("P_PMarzy_3_1", "towary używane"),
                ("P_PMarzy_3_2", "dzieła sztuki"),
                ("P_PMarzy_3_3", "przedmioty kolekcjonerskie i antyki"),
            )
            if _flag(margin, name)
        ]
        line("Procedura marży" + (f": {', '.join(kinds)}" if kinds else ""))
    if not items:
        items.append(
            tag(
                "p",
                "Brak adnotacji: nie dotyczy metoda kasowa, samofakturowanie, odwrotne obciążenie, mechanizm "
                "podzielonej płatności, zwolnienie od podatku, wewnątrzwspólnotowa dostawa nowych środków "
                "transportu, procedura trójstronna uproszczona ani procedura marży.",
                s="muted",
            )
        )
    return _section("Adnotacje", items)


def _additional(fa: El) -> Html | None:
    descriptions = _findall(fa, "DodatkowyOpis")
    numbered = any(_text(d, "NrWiersza") for d in descriptions)
    rows: list[list[Cell]] = [
        [
            *([(_text(d, "NrWiersza"), True)] if numbered else []),
            (_text(d, "Klucz"), False),
            (_raw(d, "Wartosc"), False),
        ]
        for d in descriptions
    ]
    headers = [*(["Numer wiersza"] if numbered else []), "Rodzaj informacji", "Treść informacji"]
    flags = [
        tag("p", "• Faktura, o której mowa w art. 109 ust. 3d ustawy", s="p") if _flag(fa, "FP") else None,
        tag(
            "p", "• Istniejące powiązania między nabywcą a dokonującym dostawy towarów lub usługodawcą", s="p"
        )
        if _flag(fa, "TP")
        else None,
        tag(
            "p",
            "• Informacja dodatkowa związana ze zwrotem podatku akcyzowego zawartego w cenie oleju napędowego",
            s="p",
        )
        if _flag(fa, "ZwrotAkcyzy")
        else None,
    ]
    return _section("Dodatkowe informacje", flags, _table(headers, rows))


def _settlement(invoice: fa3.Invoice, fa: El) -> Html | None:
    el = _find(fa, "Rozliczenie")
    if el is None:
        return None
    cur = invoice.currency

    def entries(title: str, name: str, reason: str) -> Html | None:
        rows: list[Sequence[Cell]] = [
            [(_text(e, "Powod"), False), (_money(_text(e, "Kwota"), cur), True)] for e in _findall(el, name)
        ]
        return tag("div", tag("div", title, s="h3"), _table([reason, "Kwota"], rows)) if rows else None

    return _section(
        "Rozliczenie",
        _columns(
            entries("Obciążenia", "Obciazenia", "Powód obciążenia"),
            entries("Odliczenia", "Odliczenia", "Powód odliczenia"),
        ),
        _kv("Suma kwot obciążenia", _money(_text(el, "SumaObciazen"), cur)),
        _kv("Suma kwot odliczenia", _money(_text(el, "SumaOdliczen"), cur)),
        _kv("Do zapłaty", _money(_text(el, "DoZaplaty"), cur)),
        _kv("Do rozliczenia", _money(_text(el, "DoRozliczenia"), cur)),
    )


def _account_number(text: str | None) -> str | None:
    """A Polish NRB (26 digits) in the usual groups ``XX XXXX XXXX ...``; other numbers as they are."""
    if text and len(text) == 26 and text.isdigit():
        return " ".join([text[:2], *(text[i : i + 4] for i in range(2, 26, 4))])
    return text


def _bank_accounts(title: str, accounts: list[El]) -> Html | None:
    blocks = []
    for el in accounts:
        blocks.append(
            tag(
                "div",
                tag("div", title, s="h3"),
                _table(
                    ["Pełny numer rachunku", "Kod SWIFT", "Nazwa banku", "Opis rachunku"],
                    [
                        [
                            (_account_number(_text(el, "NrRB")), False),
                            (_text(el, "SWIFT"), False),
                            (_text(el, "NazwaBanku"), False),
                            (_text(el, "OpisRachunku"), False),
                        ]
                    ],
                ),
                _kv("Rachunek własny banku", OWN_BANK_ACCOUNT.get(_text(el, "RachunekWlasnyBanku") or "")),
            )
        )
    return _join(blocks) or None


def _payment_method(el: El | None) -> str | None:
    if _flag(el, "PlatnoscInna"):
        return "Płatność inna" + (f": {_text(el, 'OpisPlatnosci')}" if _text(el, "OpisPlatnosci") else "")
    code = _text(el, "FormaPlatnosci")
    return PAYMENT_METHODS.get(code or "", code)


def _payment(invoice: fa3.Invoice, fa: El) -> Html | None:
    el = _find(fa, "Platnosc")
    if el is None:
        return None
    cur = invoice.currency
    if _flag(el, "Zaplacono"):
        status = "Zapłacono"
    elif _text(el, "ZnacznikZaplatyCzesciowej") == "1":
        status = "Zapłacono w części"
    elif _text(el, "ZnacznikZaplatyCzesciowej") == "2":
        status = "Zapłacono całość w częściach"
    else:
        status = "Brak zapłaty"
    partial: list[Sequence[Cell]] = [
        [
            (_text(p, "DataZaplatyCzesciowej"), False),
            (_money(_text(p, "KwotaZaplatyCzesciowej"), cur), True),
            (_payment_method(p), False),
        ]
        for p in _findall(el, "ZaplataCzesciowa")
    ]
    terms: list[Sequence[Cell]] = []
    for term in _findall(el, "TerminPlatnosci"):
        desc = _find(term, "TerminOpis")
        described = " ".join(
            p
            for p in (_text(desc, "Ilosc"), _text(desc, "Jednostka"), _text(desc, "ZdarzeniePoczatkowe"))
            if p
        )
        terms.append([(_text(term, "Termin"), False), (described or None, False)])
    discount = _find(el, "Skonto")
    link = _find(el, "LinkDoPlatnosci")
    ipksef = _find(el, "IPKSeF")
    return _section(
        "Płatność",
        _kv("Informacja o płatności", status),
        _kv("Data zapłaty", _text(el, "DataZaplaty")),
        _kv("Forma płatności", _payment_method(el)),
        _table(["Data zapłaty częściowej", "Kwota zapłaty częściowej", "Forma płatności"], partial),
        _table(["Termin płatności", "Opis terminu płatności"], terms),
        _bank_accounts("Numer rachunku bankowego", _findall(el, "RachunekBankowy")),
        _bank_accounts("Numer rachunku bankowego faktora", _findall(el, "RachunekBankowyFaktora")),
        [
            _kv("Warunki skonta", _text(discount, "WarunkiSkonta")),
            _kv("Wysokość skonta", _text(discount, "WysokoscSkonta")),
        ]
        if discount is not None
        else None,
        # The payment link is the issuer's text: shown, never made clickable here.
        _kv("Link do płatności bezgotówkowej", link.text.strip() if link is not None and link.text else None),
        _kv(
            "Identyfikator płatności KSeF",
            ipksef.text.strip() if ipksef is not None and ipksef.text else None,
        ),
    )


def _transport(el: El) -> Html:
    kind = TRANSPORT_KINDS.get(_text(el, "RodzajTransportu") or "")
    if _flag(el, "TransportInny"):
        kind = "Transport inny" + (
            f": {_text(el, 'OpisInnegoTransportu')}" if _text(el, "OpisInnegoTransportu") else ""
        )
    cargo = CARGO_KINDS.get(_text(el, "OpisLadunku") or "")
    if _flag(el, "LadunekInny"):
        cargo = "Ładunek inny" + (
            f": {_text(el, 'OpisInnegoLadunku')}" if _text(el, "OpisInnegoLadunku") else ""
        )
    carrier = _find(el, "Przewoznik")
    places = [
        ("Adres miejsca wysyłki", _find(el, "WysylkaZ")),
        *[("Adres pośredni wysyłki", p) for p in _findall(el, "WysylkaPrzez")],
        ("Adres miejsca docelowego", _find(el, "WysylkaDo")),
    ]
    return tag(
        "div",
        tag("div", "Transport", s="h3"),
        _kv("Rodzaj transportu", kind),
        tag(
            "div",
            tag("div", "Przewoźnik", s="h3"),
            _identification(carrier),
            _address_lines(_find(carrier, "AdresPrzewoznika")),
        )
        if carrier is not None
        else None,
        _kv("Numer zlecenia transportu", _text(el, "NrZleceniaTransportu")),
        _kv("Rodzaj ładunku", cargo),
        _kv("Jednostka opakowania", _text(el, "JednostkaOpakowania")),
        _kv("Data i godzina rozpoczęcia transportu", _datetime(_text(el, "DataGodzRozpTransportu"))),
        _kv("Data i godzina zakończenia transportu", _datetime(_text(el, "DataGodzZakTransportu"))),
        [
            [tag("p", tag("span", label + ":", s="label"), s="p"), _address_lines(p)]
            for label, p in places
            if p is not None
        ],
    )


def _terms(fa: El) -> Html | None:
    el = _find(fa, "WarunkiTransakcji")
    if el is None:
        return None
    contracts: list[Sequence[Cell]] = [
        [(_text(c, "DataUmowy"), False), (_text(c, "NrUmowy"), False)] for c in _findall(el, "Umowy")
    ]
    orders: list[Sequence[Cell]] = [
        [(_text(c, "DataZamowienia"), False), (_text(c, "NrZamowienia"), False)]
        for c in _findall(el, "Zamowienia")
    ]
    batches = [b for b in (" ".join((e.text or "").split()) for e in _findall(el, "NrPartiiTowaru")) if b]
    rate = _text(el, "KursUmowny")
    return _section(
        "Warunki transakcji",
        _columns(
            _table(["Data umowy", "Numer umowy"], contracts),
            _table(["Data zamówienia", "Numer zamówienia"], orders),
        ),
        _kv("Numery partii towaru", ", ".join(batches) or None),
        _kv("Warunki dostawy towarów", _text(el, "WarunkiDostawy")),
        _kv("Kurs umowny", _number(rate, money=False)),
        _kv("Waluta umowna", _text(el, "WalutaUmowna")),
        [_transport(t) for t in _findall(el, "Transport")],
        tag(
            "p",
            "Dostawa dokonana przez podmiot, o którym mowa w art. 22 ust. 2d ustawy (podmiot pośredniczący)",
            s="p",
        )
        if _flag(el, "PodmiotPosredniczacy")
        else None,
    )


def _footer(root: El) -> Html | None:
    footer = _find(root, "Stopka")
    if footer is None:
        return None
    texts = [tag("p", t, s="text") for i in _findall(footer, "Informacje") if (t := _raw(i, "StopkaFaktury"))]
    registers: list[Sequence[Cell]] = [
        [
            (_text(r, "PelnaNazwa"), False),
            (_text(r, "KRS"), False),
            (_text(r, "REGON"), False),
            (_text(r, "BDO"), False),
        ]
        for r in _findall(footer, "Rejestry")
    ]
    return _section(
        "Pozostałe informacje",
        [tag("div", tag("div", "Stopka faktury", s="h3"), texts)] if texts else None,
        tag("div", tag("div", "Rejestry", s="h3"), _table(["Pełna nazwa", "KRS", "REGON", "BDO"], registers))
        if registers
        else None,
    )


def _attachment(root: El) -> Html | None:
    attachment = _find(root, "Zalacznik")
    if attachment is None:
        return None
    blocks: list[Content] = []
    for i, block in enumerate(_findall(attachment, "BlokDanych"), start=1):
        meta: list[Sequence[Cell]] = [
            [(_text(m, "ZKlucz"), False), (_text(m, "ZWartosc"), False)] for m in _findall(block, "MetaDane")
        ]
        paragraphs = [
            tag("p", t, s="text")
            for a in _findall(block, "Tekst/Akapit")
            if (t := " ".join((a.text or "").split()))
        ]
        tables: list[Content] = []
        for table in _findall(block, "Tabela"):
            tmeta: list[Sequence[Cell]] = [
                [(_text(m, "TKlucz"), False), (_text(m, "TWartosc"), False)]
                for m in _findall(table, "TMetaDane")
            ]
            headers = [" ".join((n.text or "").split()) for n in _findall(table, "TNaglowek/Kol/NKom")]
            rows: list[Sequence[Cell]] = [
                [(" ".join((c.text or "").split()), False) for c in _findall(w, "WKom")]
                for w in _findall(table, "Wiersz")
            ]
            sums = [(" ".join((c.text or "").split()), False) for c in _findall(table, "Suma/SKom")]
            tables += [
                _table(["Klucz", "Wartość"], tmeta),
                tag("p", _text(table, "Opis"), s="p") if _text(table, "Opis") else None,
                _table(headers, rows, sums) if headers else None,
            ]
        blocks.append(
            tag(
                "div",
                tag("div", _text(block, "ZNaglowek") or f"Blok danych {i}", s="h3"),
                _table(["Klucz", "Wartość"], meta),
                paragraphs,
                tables,
            )
        )
    return _section("Załącznik do faktury", blocks)


def _qr(
    invoice: fa3.Invoice, data: bytes, ksef_number: str | None, environment: Environment | None
) -> Html | None:
    if environment is None:
        return None
    try:
        url = qr.invoice_verification_url(environment, invoice.seller.nip or "", invoice.issue_date, data)
        label = qr.label_for_invoice(ksef_number)
        png = qr.qr_png(url, label, scale=3)
    except ValueError as exc:
        return _section(
            "Kod QR weryfikacji faktury",
            tag("p", f"Nie można utworzyć kodu QR weryfikacji (KOD I): {exc}", s="warn"),
        )
    image = tag(
        "img",
        src="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        alt=f"Kod QR weryfikacji faktury: {label}",
        title=label,
    )
    text = tag(
        "div",
        tag("p", "Sprawdź, czy Twoja faktura znajduje się w KSeF!", s="kind"),
        tag("p", "Nie możesz zeskanować kodu z obrazka? Przejdź do weryfikacji faktury pod adresem:", s="p"),
        tag("p", tag("a", url, href=url, target="_blank", rel="noopener noreferrer"), s="p"),
        _kv("Oznaczenie kodu", label),
    )
    return _section(
        "Kod QR weryfikacji faktury (KOD I)",
        tag("table", tag("tr", tag("td", image, s="qr"), tag("td", text, s="cell")), s="layout"),
    )


def _kod2(url: str | None) -> Html | None:
    """KOD II of an offline invoice: it confirms the issuer (kody-qr.md), labelled CERTYFIKAT."""
    if not url:
        return None
    png = qr.qr_png(url, qr.CERTIFICATE_LABEL, scale=3)
    image = tag(
        "img",
        src="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        alt=f"Kod QR weryfikacji wystawcy: {qr.CERTIFICATE_LABEL}",
        title=qr.CERTIFICATE_LABEL,
    )
    text = tag(
        "div",
        tag("p", "Faktura wystawiona w trybie offline: kod potwierdza tożsamość wystawcy.", s="kind"),
        tag("p", tag("a", url, href=url, target="_blank", rel="noopener noreferrer"), s="p"),
        _kv("Oznaczenie kodu", qr.CERTIFICATE_LABEL),
    )
    return _section(
        "Kod QR weryfikacji wystawcy (KOD II)",
        tag("table", tag("tr", tag("td", image, s="qr"), tag("td", text, s="cell")), s="layout"),
    )


def _made_by(invoice: fa3.Invoice) -> Html | None:
    made = [
        _kv("Wytworzona w", invoice.system_info),
        _kv("Data wytworzenia", _datetime(invoice.created_at.isoformat()) if invoice.created_at else None),
        _kv(
            "Struktura", f"{invoice.form_code.system_code} (wersja schemy {invoice.form_code.schema_version})"
        ),
    ]
    return tag("div", made, s="muted")


def _page(title: str, body: Html) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="pl"><head><meta charset="utf-8"/>'
        f"<title>{esc(title)}</title></head><body>{body}</body></html>\n"
    )


def invoice_html(
    xml: bytes,
    *,
    ksef_number: str | None = None,
    environment: Environment | None = None,
    page: bool = False,
    certificate_url: str | None = None,
) -> str:
    """The invoice ``xml`` (the exact bytes, as sent to KSeF) as safe HTML, labelled in Polish.

    ``ksef_number``: the invoice's KSeF number, when it has one (shown in the header and under the QR code).
    ``environment``: the KSeF environment whose verification address the KOD I QR code points to; without it
    no QR code is drawn. ``page``: a whole HTML document instead of a fragment. ``certificate_url``: the KOD II
    link of an invoice issued offline (:func:`ksefnet_core.offline.kod2_url`), drawn under KOD I.
    """
    if not isinstance(xml, bytes):
        raise VisualisationError("the invoice must be given as the XML file's bytes")
    try:
        invoice, root = fa3.parse_tree(xml)
    except fa3.InvoiceValidationError as exc:
        raise VisualisationError(f"The invoice cannot be shown: {exc}", exc.issues) from None
    fa = _find(root, "Fa")
    assert fa is not None  # parse_tree() refuses an invoice without Fa
    body = tag(
        "div",
        _header(invoice, fa, ksef_number),
        _corrected(invoice, fa),
        _parties(root),
        _details(invoice, fa),
        _lines(invoice, fa),
        _order(invoice, fa),
        _vat_summary(invoice, fa),
        _annotations(fa),
        _additional(fa),
        _settlement(invoice, fa),
        _payment(invoice, fa),
        _terms(fa),
        _footer(root),
        _attachment(root),
        _qr(invoice, xml, ksef_number, environment),
        _kod2(certificate_url),
        _made_by(invoice),
        s="root",
        class_="ksefnet-invoice",
    )
    return _page(f"Faktura {invoice.number}", body) if page else str(body)


# -- UPO ------------------------------------------------------------------------------------------------------
CONTEXT_TYPES = {
    "Nip": "NIP",
    "IdWewnetrzny": "Identyfikator wewnętrzny",
    "IdZlozonyVatUE": "Identyfikator złożony (NIP i numer VAT UE)",
    "IdDostawcyUslugPeppol": "Identyfikator dostawcy usług Peppol",
}


def upo_html(xml: bytes, *, page: bool = False) -> str:
    """KSeF's UPO (Urzędowe Poświadczenie Odbioru, v4-x) of an invoice or of a session as safe HTML, in Polish."""
    if not isinstance(xml, bytes) or not xml.strip():
        raise VisualisationError("the UPO must be given as the XML file's bytes")
    try:
        root = parse_bytes(xml[3:] if xml.startswith(b"\xef\xbb\xbf") else xml)
    except UnsafeXmlError as exc:
        key = "doctype" if "DOCTYPE" in exc.reason else "not-well-formed"
        issue = fa3.ValidationIssue("xml", exc.reason, line=exc.line, key=key)
        raise VisualisationError(f"The UPO cannot be shown: {exc}", [issue]) from None
    if etree.QName(root).localname != "Potwierdzenie":
        name = etree.QName(root).localname
        raise VisualisationError(
            f"Not a KSeF UPO: the root element is {name!r}, not 'Potwierdzenie'",
            [fa3.ValidationIssue("form", f"Not a KSeF UPO: the root element is {name!r}", key="not-a-upo",
                                 params={"root": name})],
        )  # fmt: skip
    auth = _find(root, "Uwierzytelnienie")
    context = _find(auth, "IdKontekstu")
    context_el = next((c for c in (context if context is not None else []) if isinstance(c.tag, str)), None)
    context_type = (
        CONTEXT_TYPES.get(etree.QName(context_el).localname, "") if context_el is not None else None
    )
    context_value = " ".join((context_el.text or "").split()) if context_el is not None else None
    pages = _find(root, "OpisPotwierdzenia")
    documents = _findall(root, "Dokument")
    rows: list[Sequence[Cell]] = [
        [
            (str(i), True),
            (_text(d, "NumerKSeFDokumentu"), False),
            (_text(d, "NumerFaktury"), False),
            (_text(d, "NipSprzedawcy"), False),
            (_text(d, "DataWystawieniaFaktury"), False),
            (_datetime(_text(d, "DataPrzeslaniaDokumentu")), False),
            (_datetime(_text(d, "DataNadaniaNumeruKSeF")), False),
            (_text(d, "TrybWysylki"), False),
            (_text(d, "SkrotDokumentu"), False),
        ]
        for i, d in enumerate(documents, start=1)
    ]
    body = tag(
        "div",
        tag("div", "Urzędowe Poświadczenie Odbioru dokumentu elektronicznego KSeF (UPO)", s="number"),
        _section(
            "Dane poświadczenia",
            _kv("Nazwa podmiotu przyjmującego dokument", _text(root, "NazwaPodmiotuPrzyjmujacego")),
            _kv("Numer referencyjny sesji", _text(root, "NumerReferencyjnySesji")),
            _kv(
                "Identyfikator kontekstu uwierzytelnienia",
                f"{context_type}: {context_value}" if context_type else context_value,
            ),
            _kv("Numer referencyjny tokena KSeF", _text(auth, "NumerReferencyjnyTokenaKSeF")),
            _kv("Skrót dokumentu uwierzytelniającego", _text(auth, "SkrotDokumentuUwierzytelniajacego")),
            _kv("Nazwa struktury logicznej", _text(root, "NazwaStrukturyLogicznej")),
            _kv("Kod formularza", _text(root, "KodFormularza")),
            [
                _kv("Strona dokumentu UPO", f"{_text(pages, 'Strona')} z {_text(pages, 'LiczbaStron')}"),
                _kv(
                    "Zakres dokumentów",
                    f"od {_text(pages, 'ZakresDokumentowOd')} do {_text(pages, 'ZakresDokumentowDo')}",
                ),
                _kv("Całkowita liczba dokumentów", _text(pages, "CalkowitaLiczbaDokumentow")),
            ]
            if pages is not None
            else None,
        ),
        _section(
            "Dokumenty",
            _table(
                [
                    "Lp.",
                    "Numer KSeF",
                    "Numer faktury",
                    "NIP sprzedawcy",
                    "Data wystawienia",
                    "Data przesłania do KSeF",
                    "Data nadania numeru KSeF",
                    "Tryb wysyłki",
                    "Skrót dokumentu (SHA-256)",
                ],
                rows,
            )
            or tag("p", "Poświadczenie nie wymienia żadnego dokumentu.", s="muted"),
        ),
        tag(
            "p",
            "Dokumenty zostały zarejestrowane w systemie teleinformatycznym Ministerstwa Finansów.",
            s="muted",
        )
        if documents
        else None,
        s="root",
        class_="ksefnet-upo",
    )
    return _page("UPO KSeF", body) if page else str(body)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ksefnet_core.visualise FILE.xml [KSEF_NUMBER]``: an invoice or UPO as an HTML page."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m ksefnet_core.visualise FILE.xml [KSEF_NUMBER] > page.html", file=sys.stderr)
        return 2
    with open(args[0], "rb") as handle:
        data = handle.read()
    from .environments import TEST

    try:
        if b"Potwierdzenie" in data[:2000]:
            out = upo_html(data, page=True)
        else:
            out = invoice_html(
                data, ksef_number=args[1] if len(args) > 1 else None, environment=TEST, page=True
            )
    except VisualisationError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
