"""Safe XML parsing for documents that come from outside (invoices, UPOs, XAdES requests).

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a document that declares a
DOCTYPE at all is refused: KSeF documents never need one, and a DOCTYPE is how billion-laughs (entity
expansion) and external-entity (XXE) attacks start. Deeply nested or oversized trees are refused by libxml2's
default limits (``huge_tree`` stays off).
"""

from __future__ import annotations

import re
import threading

from lxml import etree

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


class UnsafeXmlError(ValueError):
    """The document is not well-formed XML, or uses a feature refused for safety (DTD, entities)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"{message} (line {line})")
        self.reason = message
        self.line = line


_local = threading.local()


def _parser() -> etree.XMLParser:
    # One parser per thread: lxml parsers keep state and are not meant to be shared between threads, and
    # making one costs about half as much as parsing a whole invoice.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _new_parser()
    return parser


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        collect_ids=False,
    )


def parse_bytes(data: bytes) -> etree._Element:
    """Parse ``data`` safely and return the root element, or raise :class:`UnsafeXmlError`."""
    match = _DOCTYPE.search(data)
    if match:
        line = data.count(b"\n", 0, match.start()) + 1
        raise UnsafeXmlError(
            "DOCTYPE declarations are not allowed (no DTD, no entities, no external references)", line
        )
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError(f"not well-formed XML: {exc.msg}", exc.lineno) from None
    if root.getroottree().docinfo.doctype:  # belt and braces: the pattern above should have caught it
        raise UnsafeXmlError("DOCTYPE declarations are not allowed")
    return root
