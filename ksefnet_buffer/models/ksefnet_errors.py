"""What the framework-free core reports in English, said in the reader's language.

:mod:`ksefnet_core` (which never imports Odoo) raises English texts, each with a stable code and its values:
:class:`~ksefnet_core.certificates.CredentialError` (``code``, ``params``),
:class:`~ksefnet_core.fa3.ValidationIssue` (``key``, ``params``; libxml2's schema messages are matched by
pattern) and :class:`~ksefnet_core.matching.Validity` (``items``). Here each code has a translatable template,
so no message mixes a Polish sentence with an English reason. KSeF's own descriptions are Polish and are shown
as KSeF wrote them; see ``describe_ksef_error`` in ksefnet_document.py for the client's exceptions.
"""

import re

from odoo.tools.translate import LazyTranslate

from .ksefnet_message import Join

_lt = LazyTranslate(__name__)

#: KSeF's reasons for a 403 (``reasonCode``)
FORBIDDEN_REASONS = {
    "missing-permissions": _lt("the permissions needed for this operation are missing in this context"),
    "ip-not-allowed": _lt("the request comes from an IP address other than the one given at authentication"),
    "insufficient-resource-access": _lt("no access to this resource"),
    "auth-method-not-allowed": _lt("this operation is not available for the authentication method used"),
    "security-service-blocked": _lt("KSeF's security mechanisms blocked the request"),
    "context-type-not-allowed": _lt("this operation is not available for this kind of context"),
}

#: why a certificate or key cannot be used (CredentialError.code)
CREDENTIAL_REASONS = {
    "rsa-key-size": _lt("the RSA key has %(bits)s bits; KSeF needs at least %(minimum)s"),
    "ec-key-size": _lt("the elliptic-curve key is weaker than P-256; KSeF needs P-256 or stronger"),
    "key-type": _lt("the private key is neither RSA nor elliptic-curve (ECDSA)"),
    "key-password": _lt("the private key cannot be decrypted: the password is wrong or missing"),
    "no-key": _lt("no private key found (PEM or DER expected)"),
    "no-certificate": _lt("no certificate found (PEM or DER expected)"),
    "empty": _lt("the certificate file is empty"),
    "pkcs12-unreadable": _lt(
        "the file is not a readable PKCS#12 certificate (.p12/.pfx), or the password is wrong"
    ),
    "pkcs12-incomplete": _lt("the PKCS#12 file must contain both the certificate and its private key"),
    "pem-without-key": _lt("the PEM file holds no private key; add the key file"),
    "key-mismatch": _lt("the private key does not belong to the certificate"),
}
CREDENTIAL_UNKNOWN = _lt("the file cannot be read as a certificate with its private key")


def credential_reason(exc):
    """Why ``exc`` (a CredentialError) says the certificate cannot be used, as a message part."""
    template = CREDENTIAL_REASONS.get(getattr(exc, "code", None))
    if template is None:
        return CREDENTIAL_UNKNOWN
    return _with(template, getattr(exc, "params", None) or {})


#: FA(3) validation issues (ValidationIssue.key)
ISSUE_TEXTS = {
    "empty": _lt("The invoice file is empty"),
    "size": _lt("The invoice file has %(size)s bytes; the limit is %(limit)s bytes"),
    "size-without-attachment": _lt(
        "The invoice file has %(size)s bytes; the limit for an invoice without attachments is %(limit)s bytes"
    ),
    "bom": _lt("The file starts with a byte order mark (BOM); UTF-8 without BOM is required"),
    "encoding": _lt("The file is not valid UTF-8"),
    "declared-encoding": _lt("The XML declaration names the encoding %(encoding)s; only UTF-8 is allowed"),
    "control-char": _lt("The character %(char)s is not allowed"),
    "not-well-formed": _lt("The file is not well-formed XML"),
    "doctype": _lt("DOCTYPE declarations are not allowed (no DTD, no entities, no external references)"),
    "processing-instruction": _lt("The processing instruction <?%(target)s ...?> is not allowed"),
    "not-an-invoice": _lt(
        "This is not a KSeF invoice: the root element is %(root)s in the namespace %(namespace)s"
    ),
    "form-not-accepted": _lt("The form %(form)s is not accepted here; FA (3) is required"),
    "fa-rr": _lt("FA_RR (1) invoices (VAT RR, farmers) are not supported"),
    "no-fa": _lt("The invoice has no Fa section with an issue date (P_1) and number (P_2)"),
    "issue-date": _lt("The issue date (P_1) %(date)s is later than today (%(today)s)"),
    "nip-checksum": _lt("%(party)s: the NIP %(nip)s has a wrong check digit"),
    "not-a-upo": _lt("This is not a KSeF UPO: the root element is %(root)s"),
}
ISSUE_UNKNOWN = _lt("The invoice file does not meet KSeF's requirements (%(code)s)")

#: libxml2's schema validation messages (English, from the XSD validator), by pattern
_E = r"Element '(?P<element>[^']+)'(?:, attribute '(?P<attribute>[^']+)')?: "
SCHEMA_PATTERNS = [
    (
        _E + r"This element is not expected\. Expected is (?:one of )?\( (?P<expected>.+) \)\.?$",
        _lt("The element %(element)s is not expected here; expected: %(expected)s"),
    ),
    (_E + r"This element is not expected\.?$", _lt("The element %(element)s is not expected here")),
    (
        _E + r"Missing child element\(s\)\. Expected is (?:one of )?\( (?P<expected>.+) \)\.?$",
        _lt("The element %(element)s lacks required elements; expected: %(expected)s"),
    ),
    (
        _E
        + r"\[facet 'pattern'\] The value '(?P<value>.*)' is not accepted by the pattern '(?P<pattern>.*)'\.?$",
        _lt("%(element)s: the value '%(value)s' does not have the required format (%(pattern)s)"),
    ),
    (
        _E
        + r"\[facet 'enumeration'\] The value '(?P<value>.*)' is not an element of the set \{(?P<set>.*)\}\.?$",
        _lt("%(element)s: the value '%(value)s' is not one of the allowed values (%(set)s)"),
    ),
    (
        _E
        + r"\[facet 'maxLength'\] The value '(?P<value>.*)' has a length of '(?P<length>\d+)'; this exceeds "
        r"the allowed maximum length of '(?P<limit>\d+)'\.?$",
        _lt("%(element)s: the value has %(length)s characters; at most %(limit)s are allowed"),
    ),
    (
        _E
        + r"\[facet 'minLength'\] The value '(?P<value>.*)' has a length of '(?P<length>\d+)'; this underruns "
        r"the allowed minimum length of '(?P<limit>\d+)'\.?$",
        _lt("%(element)s: the value has %(length)s characters; at least %(limit)s are required"),
    ),
    (
        _E + r"\[facet 'length'\] The value '(?P<value>.*)' has a length of '(?P<length>\d+)'; this differs "
        r"from the allowed length of '(?P<limit>\d+)'\.?$",
        _lt("%(element)s: the value has %(length)s characters; exactly %(limit)s are required"),
    ),
    (
        _E
        + r"\[facet '(?:minInclusive|minExclusive)'\] The value '(?P<value>.*)' (?:is less than the minimum "
        r"value allowed \('(?P<limit>.*)'\)|must be greater than '(?P<limit2>.*)')\.?$",
        _lt("%(element)s: the value %(value)s is below the allowed minimum"),
    ),
    (
        _E + r"\[facet '(?:maxInclusive|maxExclusive)'\] The value '(?P<value>.*)' (?:is greater than the "
        r"maximum value allowed \('(?P<limit>.*)'\)|must be less than '(?P<limit2>.*)')\.?$",
        _lt("%(element)s: the value %(value)s is above the allowed maximum"),
    ),
    (
        _E + r"\[facet 'totalDigits'\] The value '(?P<value>.*)' has more digits than are allowed "
        r"\('(?P<limit>\d+)'\)\.?$",
        _lt("%(element)s: the value %(value)s has more than %(limit)s digits"),
    ),
    (
        _E + r"\[facet 'fractionDigits'\] The value '(?P<value>.*)' has more fractional digits than are "
        r"allowed \('(?P<limit>\d+)'\)\.?$",
        _lt("%(element)s: the value %(value)s has more than %(limit)s decimal places"),
    ),
    (
        _E
        + r"'(?P<value>.*)' is not a valid value of the (?:local )?(?:atomic|union|list) type(?: '(?P<type>.*)')?\.?$",
        _lt("%(element)s: '%(value)s' is not a valid value for this element"),
    ),
    (
        _E + r"The attribute '(?P<name>[^']+)' is not allowed\.?$",
        _lt("%(element)s: the attribute %(name)s is not allowed"),
    ),
    (
        _E + r"The attribute '(?P<name>[^']+)' is required but missing\.?$",
        _lt("%(element)s: the required attribute %(name)s is missing"),
    ),
    (
        _E + r"Character content other than whitespace is not allowed.*$",
        _lt("%(element)s: text is not allowed in this element, only other elements"),
    ),
    (
        _E + r"No matching global declaration available for the validation root\.?$",
        _lt("%(element)s: this root element is not part of the FA (3) schema"),
    ),
]
SCHEMA_PATTERNS = [(re.compile(pattern, re.S), template) for pattern, template in SCHEMA_PATTERNS]
SCHEMA_UNKNOWN = _lt("The element %(element)s does not match the FA (3) schema")
SCHEMA_UNKNOWN_PLACE = _lt("The invoice does not match the FA (3) schema")
WHERE_LINE = _lt("%(text)s (line %(line)s)")
WHERE_PATH = _lt("%(text)s (%(path)s)")
WHERE_LINE_PATH = _lt("%(text)s (line %(line)s, %(path)s)")


def _with(template, params):
    """The lazy template ``template`` with these parameters (a new part; templates are shared)."""
    return type(template)(template._source, **params, _module=template._module)


def _schema_part(issue):
    message = issue.message.strip()
    for pattern, template in SCHEMA_PATTERNS:
        match = pattern.match(message)
        if match:
            values = {k: v for k, v in match.groupdict().items() if v is not None}
            if values.get("attribute"):
                values["element"] = f"{values['element']}/@{values['attribute']}"
            return _with(template, values)
    element = re.match(r"Element '([^']+)'", message)
    return _with(SCHEMA_UNKNOWN, {"element": element.group(1)}) if element else SCHEMA_UNKNOWN_PLACE


def issue_part(issue):
    """One FA(3) validation issue (``ValidationIssue``) as a message part, with where it is."""
    if issue.key == "xsd" or (issue.code == "schema" and not issue.key):
        text = _schema_part(issue)
    elif issue.key in ISSUE_TEXTS:
        text = _with(ISSUE_TEXTS[issue.key], issue.params)
    else:
        text = _with(ISSUE_UNKNOWN, {"code": issue.code})
    if issue.line and issue.path:
        return _with(WHERE_LINE_PATH, {"text": text, "line": issue.line, "path": issue.path})
    if issue.line:
        return _with(WHERE_LINE, {"text": text, "line": issue.line})
    if issue.path:
        return _with(WHERE_PATH, {"text": text, "path": issue.path})
    return text


INVOICE_INVALID = _lt("The invoice is not a valid FA(3) document:")
INVOICE_MORE = _lt("... and %(n)s more problems.")


def invoice_issues_part(exc, limit=20):
    """An InvoiceValidationError as lines: the heading, then each problem (at most ``limit``)."""
    lines = [INVOICE_INVALID]
    lines += [Join("", ["- ", issue_part(i)]) for i in exc.issues[:limit]]
    if len(exc.issues) > limit:
        lines.append(_with(INVOICE_MORE, {"n": len(exc.issues) - limit}))
    return Join("\n", lines)


CANNOT_READ = _lt("the file cannot be read")


def issues_reason(issues):
    """Why a file cannot be used, from its issues (``ValidationIssue``), as one message part."""
    return Join("; ", [issue_part(i) for i in issues]) if issues else CANNOT_READ
