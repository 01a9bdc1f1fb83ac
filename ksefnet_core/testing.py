"""Building valid FA(3) invoices for tests, benchmarks and demos (no network, no Odoo).

``sample_invoice(seller_nip=..., number=...)`` returns UTF-8 XML bytes that validate against the official
FA(3) schema. The structure follows MF's example ``FA_3_Przyklad_1.xml``; every value a test or a
classification rule cares about is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

FA3_NAMESPACE = "http://crd.gov.pl/wzor/2025/06/25/13775/"


@dataclass(frozen=True)
class ThirdParty:
    """Podmiot3. Identified by ``nip`` or, when it has none, by ``internal_id`` (IDWew: NIP-5 digits)."""

    nip: str | None = None
    name: str = "Odbiorca"
    role: int = 2  # 2: recipient (odbiorca); see the FA(3) Rola codes
    internal_id: str | None = None  # IDWew, used instead of the NIP
    address_line1: str | None = None
    address_line2: str | None = None
    gln: str | None = None
    buyer_id: str | None = None  # IDNabywcy
    customer_number: str | None = None  # NrKlienta


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _address(line1: str, line2: str | None, gln: str | None, country: str = "PL") -> str:
    parts = [f"<KodKraju>{country}</KodKraju>", f"<AdresL1>{escape(line1)}</AdresL1>"]
    if line2:
        parts.append(f"<AdresL2>{escape(line2)}</AdresL2>")
    if gln:
        parts.append(f"<GLN>{escape(gln)}</GLN>")
    return "<Adres>" + "".join(parts) + "</Adres>"


def sample_invoice(
    *,
    seller_nip: str,
    number: str,
    issue_date: date | None = None,
    buyer_nip: str = "1111111111",
    seller_name: str = "ABC AGD sp. z o.o.",
    buyer_name: str = "F.H.U. Jan Kowalski",
    buyer_address: tuple[str, str] = ("ul. Polna 1", "00-001 Warszawa"),
    buyer_gln: str | None = None,
    customer_number: str | None = None,
    kind: str = "VAT",
    net_amounts: tuple[str, ...] = ("1626.01", "40.65"),
    vat_rate: int = 23,
    delivery_notes: tuple[str, ...] = (),
    order_number: str | None = None,
    third_parties: tuple[ThirdParty, ...] = (),
    corrected: tuple[str, date, str | None] | None = None,
    currency: str = "PLN",
    padding_bytes: int = 0,
) -> bytes:
    """A valid FA(3) invoice. ``corrected`` = (number, issue date, KSeF number or None) for KOR kinds.

    ``padding_bytes`` adds a free-text description of that many characters (to test size limits). The
    issue date is today in Poland by default: between midnight in Warsaw and midnight UTC the machine's
    date is a day behind, and KSeF (and the simulator) take an invoice dated before its acceptance day as
    issued offline.
    """
    from .fa3 import poland_today  # fa3 does not import this module; kept local all the same

    issue = issue_date or poland_today()  # the day in Poland, as an issuer there dates it (not the machine's)
    nets = [Decimal(n) for n in net_amounts]
    net = sum(nets, Decimal(0))
    vat = (net * vat_rate / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    gross = net + vat
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    wz = "".join(f"<WZ>{escape(w)}</WZ>" for w in delivery_notes)
    podmiot3 = "".join(
        "<Podmiot3>"
        + (f"<IDNabywcy>{escape(tp.buyer_id)}</IDNabywcy>" if tp.buyer_id else "")
        + "<DaneIdentyfikacyjne>"
        + (f"<NIP>{tp.nip}</NIP>" if tp.nip else f"<IDWew>{escape(tp.internal_id or '')}</IDWew>")
        + f"<Nazwa>{escape(tp.name)}</Nazwa></DaneIdentyfikacyjne>"
        + (_address(tp.address_line1, tp.address_line2, tp.gln) if tp.address_line1 else "")
        + f"<Rola>{tp.role}</Rola>"
        + (f"<NrKlienta>{escape(tp.customer_number)}</NrKlienta>" if tp.customer_number else "")
        + "</Podmiot3>"
        for tp in third_parties
    )
    correction = ""
    if kind.startswith("KOR"):
        if not corrected:
            raise ValueError("a correction needs the corrected invoice (number, issue date, KSeF number)")
        c_number, c_date, c_ksef = corrected
        ref = (
            f"<NrKSeF>1</NrKSeF><NrKSeFFaKorygowanej>{c_ksef}</NrKSeFFaKorygowanej>"
            if c_ksef
            else "<NrKSeFN>1</NrKSeFN>"
        )
        correction = (
            "<PrzyczynaKorekty>Błędna cena</PrzyczynaKorekty><TypKorekty>2</TypKorekty>"
            f"<DaneFaKorygowanej><DataWystFaKorygowanej>{c_date.isoformat()}</DataWystFaKorygowanej>"
            f"<NrFaKorygowanej>{escape(c_number)}</NrFaKorygowanej>{ref}</DaneFaKorygowanej>"
        )
    # DodatkowyOpis/Wartosc holds at most 256 characters; repeat the element for larger padding.
    chunks = [min(256, padding_bytes - i) for i in range(0, padding_bytes, 256)]
    description = "".join(
        f"<DodatkowyOpis><Klucz>uwagi</Klucz><Wartosc>{'x' * n}</Wartosc></DodatkowyOpis>" for n in chunks
    )
    rows = "".join(
        f"<FaWiersz><NrWierszaFa>{i}</NrWierszaFa><P_7>Towar {i}</P_7><P_8A>szt.</P_8A><P_8B>1</P_8B>"
        f"<P_9A>{_money(n)}</P_9A><P_11>{_money(n)}</P_11><P_12>{vat_rate}</P_12></FaWiersz>"
        for i, n in enumerate(nets, start=1)
    )
    order = (
        f"<WarunkiTransakcji><Zamowienia><DataZamowienia>{issue.isoformat()}</DataZamowienia>"
        f"<NrZamowienia>{escape(order_number)}</NrZamowienia></Zamowienia></WarunkiTransakcji>"
        if order_number
        else ""
    )
    customer = f"<NrKlienta>{escape(customer_number)}</NrKlienta>" if customer_number else ""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<Faktura xmlns="{FA3_NAMESPACE}">'
        '<Naglowek><KodFormularza kodSystemowy="FA (3)" wersjaSchemy="1-0E">FA</KodFormularza>'
        f"<WariantFormularza>3</WariantFormularza><DataWytworzeniaFa>{created}</DataWytworzeniaFa>"
        "<SystemInfo>KSeFNet</SystemInfo></Naglowek>"
        f"<Podmiot1><DaneIdentyfikacyjne><NIP>{seller_nip}</NIP><Nazwa>{escape(seller_name)}</Nazwa>"
        "</DaneIdentyfikacyjne>" + _address("ul. Kwiatowa 1 m. 2", "00-001 Warszawa", None) + "</Podmiot1>"
        f"<Podmiot2><DaneIdentyfikacyjne><NIP>{buyer_nip}</NIP><Nazwa>{escape(buyer_name)}</Nazwa>"
        "</DaneIdentyfikacyjne>"
        + _address(buyer_address[0], buyer_address[1], buyer_gln)
        + f"{customer}<JST>2</JST><GV>2</GV></Podmiot2>"
        + podmiot3
        + f"<Fa><KodWaluty>{currency}</KodWaluty><P_1>{issue.isoformat()}</P_1><P_1M>Warszawa</P_1M>"
        f"<P_2>{escape(number)}</P_2>{wz}<P_6>{issue.isoformat()}</P_6>"
        f"<P_13_1>{_money(net)}</P_13_1><P_14_1>{_money(vat)}</P_14_1><P_15>{_money(gross)}</P_15>"
        "<Adnotacje><P_16>2</P_16><P_17>2</P_17><P_18>2</P_18><P_18A>2</P_18A>"
        "<Zwolnienie><P_19N>1</P_19N></Zwolnienie><NoweSrodkiTransportu><P_22N>1</P_22N>"
        "</NoweSrodkiTransportu><P_23>2</P_23><PMarzy><P_PMarzyN>1</P_PMarzyN></PMarzy></Adnotacje>"
        f"<RodzajFaktury>{kind}</RodzajFaktury>{correction}{description}{rows}{order}</Fa>"
        "</Faktura>"
    )
    return xml.encode("utf-8")
