import hashlib
import logging
import threading
import time
import uuid
from datetime import timedelta

import psycopg2.errors
from odoo import SUPERUSER_ID, _, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import config, mute_logger
from odoo.tools.translate import LazyTranslate

from ksefnet_core import environments
from ksefnet_core.auth import ContextIdentifier, authenticate_with_certificate, authenticate_with_ksef_token
from ksefnet_core.client import KsefClient
from ksefnet_core.crypto import SEALED_PREFIX, derive_key, seal, unseal
from ksefnet_core.errors import KsefError
from ksefnet_core.ids import is_valid_nip, normalize_nip
from ksefnet_core.throttle import Throttle

from .ksefnet_message import Join, Label, message_field, render, source_field, template_field, user_error

_logger = logging.getLogger(__name__)
_lt = LazyTranslate(__name__)

ENVIRONMENTS = [
    ("simulator", "Local simulator"),
    ("test", "KSeF TEST"),
    ("demo", "KSeF DEMO"),
    ("production", "KSeF PRODUCTION"),
    ("custom", "Custom URL"),
]
CERTIFICATE_KINDS = [
    ("company_seal", "Company seal"),
    ("personal", "Personal certificate"),
    ("personal_pesel", "Personal PESEL certificate in the company's NIP context"),
    ("other", "Other certificate (identified by fingerprint)"),
]
SUBJECT_TYPES = [
    ("Subject2", "Received (buyer)"),
    ("Subject1", "Own-issued (seller)"),
    ("Subject3", "Third party"),
    ("SubjectAuthorized", "Authorised subject"),
]
DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8800/v2"
#: the option of Odoo's configuration file that holds the key sealing KSeF credentials (outside the database)
CONFIG_SEALING_KEY = "ksefnet_sealing_key"
FILE_SEALED_PREFIX = "sealed:file:v1:"
#: the sealed secrets of a buffer
SECRET_FIELDS = (
    "ksef_token",
    "certificate_file",
    "certificate_password",
    "offline_certificate_file",
    "offline_certificate_password",
)
#: warn this many days before the certificate expires
CERTIFICATE_WARNING_DAYS = 30
#: the longest one request waits for KSeF's rate limits; a longer wait ends that step (other work goes on)
THROTTLE_MAX_WAIT = 2.0
#: how many of the latest KSeF system warnings the buffer shows
WARNINGS_SHOWN = 5
#: a buffer's lease for one operation (send, download): held by one worker, expires by itself if it dies
LEASE_SECONDS = 15 * 60
LEASE_OPERATIONS = ("send", "download")


def _lease_free(operation, alias=""):
    """SQL: the buffer's lease for ``operation`` is free (never taken, given back, or expired)."""
    assert operation in LEASE_OPERATIONS, operation
    column = f"{alias}{operation}_lease_until"
    return f"({column} IS NULL OR {column} < (now() at time zone 'UTC'))"


#: attempts of a short write on the buffer's row that a concurrent transaction updated (REPEATABLE READ)
ROW_WRITE_ATTEMPTS = 5
#: how long one run of a scheduled action goes on (working, or waiting for the next useful moment)
RUN_SECONDS = 50.0

# KSeF clients per buffer, kept between scheduled runs so that tokens are reused and refreshed rather than a
# new authentication per run. Keyed by buffer id; invalidated when the URL or the credentials change.
_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()


class KsefnetBuffer(models.Model):
    _name = "ksefnet.buffer"
    _inherit = ["ksefnet.message.mixin"]
    _description = "KSeF buffer"
    _order = "name, id"
    _rec_name = "name"
    _check_company_auto = True

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    nip = fields.Char(
        "NIP", required=True, size=10, help="The company's tax identification number: one buffer per NIP."
    )
    environment = fields.Selection(ENVIRONMENTS, required=True, default="simulator")
    api_url = fields.Char(
        "API URL",
        help="Base URL of the KSeF API ending in /v2. Used for the local simulator and for a custom URL; "
        "the KSeF environments have fixed addresses.",
    )
    api_base = fields.Char("KSeF API address", compute="_compute_api_base")

    # -- credentials (secrets readable by KSeF administrators only, never shown in views) ----------------
    auth_method = fields.Selection(
        [("token", "KSeF token"), ("certificate", "Certificate")], readonly=True, copy=False
    )
    # Secrets, sealed at rest (AES-256-GCM, key derived from the database secret; see _seal): what the
    # database, its backups or an SQL log hold is never the token, certificate or password in clear.
    ksef_token = fields.Char(groups="ksefnet_buffer.group_ksef_admin", copy=False)
    certificate_file = fields.Text(groups="ksefnet_buffer.group_ksef_admin", copy=False)
    certificate_password = fields.Char(groups="ksefnet_buffer.group_ksef_admin", copy=False)
    certificate_kind = fields.Selection(CERTIFICATE_KINDS, readonly=True, copy=False)
    certificate_subject = fields.Char(readonly=True, copy=False)
    certificate_serial = fields.Char(readonly=True, copy=False)
    certificate_fingerprint = fields.Char("Certificate SHA-256 fingerprint", readonly=True, copy=False)
    certificate_valid_from = fields.Datetime(readonly=True, copy=False)
    certificate_valid_to = fields.Datetime(readonly=True, copy=False)
    certificate_expiry_warning = fields.Char(compute="_compute_certificate_expiry_warning")
    subject_identifier_type = fields.Selection(
        [
            ("certificateSubject", "Certificate subject"),
            ("certificateFingerprint", "Certificate fingerprint"),
        ],
        default="certificateSubject",
        required=True,
        help="How KSeF identifies the certificate's owner: by the subject (NIP or PESEL in the certificate) "
        "or by the certificate's fingerprint (when permissions were granted on the fingerprint).",
    )
    credentials_set = fields.Boolean(readonly=True, copy=False)
    credentials_updated_at = fields.Datetime(readonly=True, copy=False)
    credentials_updated_by = fields.Many2one("res.users", readonly=True, copy=False)
    last_connection_at = fields.Datetime(readonly=True, copy=False)
    # the Offline-type KSeF certificate that signs KOD II of offline invoices (never used to authenticate)
    offline_certificate_file = fields.Text(groups="ksefnet_buffer.group_ksef_admin", copy=False)
    offline_certificate_password = fields.Char(groups="ksefnet_buffer.group_ksef_admin", copy=False)
    offline_certificate_set = fields.Boolean("Offline certificate set", readonly=True, copy=False)
    offline_certificate_subject = fields.Char("Offline certificate subject", readonly=True, copy=False)
    offline_certificate_serial = fields.Char("Offline certificate serial", readonly=True, copy=False)
    offline_certificate_valid_from = fields.Datetime(
        "Offline certificate valid from", readonly=True, copy=False
    )
    offline_certificate_valid_to = fields.Datetime("Offline certificate valid to", readonly=True, copy=False)
    offline_certificate_warning = fields.Char(compute="_compute_offline_certificate_warning")
    last_connection_result = message_field("last_connection_result", "Last Connection Result")
    last_connection_result_source = source_field("Last Connection Result (as written)")
    last_connection_result_template = template_field("Last Connection Result (template)")

    # -- sending ------------------------------------------------------------------------------------------
    send_enabled = fields.Boolean("Send sales invoices", default=True)
    batch_threshold = fields.Integer(
        default=100,
        help="From this many invoices waiting, a batch session is used instead of an online session.",
    )
    send_limit = fields.Integer(
        "Invoices per session",
        default=1000,
        help="The most invoices sent in one KSeF session (KSeF accepts up to 10 000 in a batch session). A "
        "round sends as many sessions as KSeF's limits allow.",
    )
    max_retries = fields.Integer(
        "Automatic retries",
        default=8,
        help="Technical errors are retried automatically with growing delays this many times, then the "
        "document waits for a person.",
    )

    # -- downloading ----------------------------------------------------------------------------------
    download_enabled = fields.Boolean("Download invoices", default=True)
    download_received = fields.Boolean("Received invoices", default=True)
    download_own = fields.Boolean("Own-issued invoices", default=False)
    download_third_party = fields.Boolean("Invoices as third party", default=False)
    download_authorized = fields.Boolean("Invoices as authorised subject", default=False)
    download_start_date = fields.Datetime(
        default=lambda self: fields.Datetime.now() - timedelta(days=30),
        help="The first download starts from this moment (permanent storage date in KSeF).",
    )
    download_mode = fields.Selection(
        [
            ("auto", "Automatic"),
            ("metadata", "Query and download one by one"),
            ("export", "Export packages"),
        ],
        default="auto",
        required=True,
        help="Export packages carry up to 10 000 invoices each; single downloads suit a few invoices per "
        "hour (KSeF allows 64 single downloads per hour). Automatic uses packages for the first download "
        "and after a long pause.",
    )
    sync_ids = fields.One2many("ksefnet.buffer.sync", "buffer_id", string="Download progress")
    session_ids = fields.One2many("ksefnet.session", "buffer_id", string="KSeF sessions")

    # -- the sending engine's own record of what it does (written by the engine only) ---------------------
    engine_note = message_field(
        "engine_note", "Sending status", help="What the sending engine did last and what it waits for."
    )
    engine_note_source = source_field("Sending status (as written)")
    engine_note_template = template_field("Sending status (template)")
    ksef_warning = fields.Text(
        "KSeF warnings",
        readonly=True,
        copy=False,
        help="The latest technical warnings KSeF sent with its answers (X-System-Warning). They change "
        "nothing yet, but tell what KSeF is going to refuse or change.",
    )
    ksef_warning_at = fields.Datetime("Last KSeF warning", readonly=True, copy=False)
    engine_next_run_at = fields.Datetime("Next sending step", readonly=True, copy=False, index=True)
    engine_last_run_at = fields.Datetime("Last sending step", readonly=True, copy=False)
    send_lease_until = fields.Datetime(
        "Sending held until", readonly=True, copy=False, groups="base.group_system"
    )
    send_lease_owner = fields.Char("Sending held by", readonly=True, copy=False, groups="base.group_system")
    download_lease_until = fields.Datetime(
        "Downloading held until", readonly=True, copy=False, groups="base.group_system"
    )
    download_lease_owner = fields.Char(
        "Downloading held by", readonly=True, copy=False, groups="base.group_system"
    )
    document_ids = fields.One2many("ksefnet.document", "buffer_id", string="Documents")

    # the Overview: sales documents per status (the sending pipeline), purchases apart
    count_waiting = fields.Integer("Waiting", compute="_compute_counts")
    count_processing = fields.Integer("Processing", compute="_compute_counts")
    count_sent = fields.Integer("Sent", compute="_compute_counts")
    count_failure = fields.Integer("Failure", compute="_compute_counts")
    count_error = fields.Integer("Error", compute="_compute_counts")
    count_purchases = fields.Integer("Purchases", compute="_compute_counts")
    count_offline_due = fields.Integer(
        "Offline deadlines",
        compute="_compute_counts",
        help="Offline invoices not yet in KSeF whose deadline is less than a day away or has passed.",
    )

    _sql_constraints = [
        ("nip_unique", "unique(nip)", "There is already a buffer for this NIP: one buffer serves one NIP."),
        ("batch_threshold_positive", "CHECK(batch_threshold > 0)", "The batch threshold must be positive."),
        (
            "send_limit_positive",
            "CHECK(send_limit > 0 AND send_limit <= 10000)",
            "The number of invoices per session must be between 1 and 10 000 (KSeF's limit).",
        ),
    ]

    @api.constrains("nip")
    def _check_nip(self):
        for buffer in self:
            if not is_valid_nip(buffer.nip or ""):
                raise ValidationError(
                    _(
                        "%(nip)s is not a valid NIP: it needs 10 digits with a correct checksum.",
                        nip=buffer.nip,
                    )
                )

    @api.constrains("environment", "api_url")
    def _check_api_url(self):
        for buffer in self:
            if buffer.environment == "custom" and not buffer.api_url:
                raise ValidationError(_("A custom environment needs its API URL."))
            if buffer.api_url and not buffer.api_url.startswith(("http://", "https://")):
                raise ValidationError(_("The API URL must start with http:// or https://."))

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("nip"):
                vals["nip"] = normalize_nip(vals["nip"])
        return super().create(vals_list)

    def write(self, vals):
        if vals.get("nip"):
            vals["nip"] = normalize_nip(vals["nip"])
        if {"nip", "environment", "api_url", "subject_identifier_type"} & vals.keys():
            self._forget_clients()
        return super().write(vals)

    # -- computed -------------------------------------------------------------------------------------
    @api.depends("environment", "api_url")
    def _compute_api_base(self):
        for buffer in self:
            buffer.api_base = buffer._environment().api_base if buffer.environment else False

    @api.depends("certificate_valid_to", "auth_method")
    def _compute_certificate_expiry_warning(self):
        now = fields.Datetime.now()
        for buffer in self:
            warning = False
            if buffer.auth_method == "certificate" and buffer.certificate_valid_to:
                days = (buffer.certificate_valid_to - now).days
                if days < 0:
                    warning = _("The certificate has expired: KSeF will refuse it. Set a new certificate.")
                elif days <= CERTIFICATE_WARNING_DAYS:
                    warning = _(
                        "The certificate expires in %(days)s days: set a new one before it does.", days=days
                    )
            buffer.certificate_expiry_warning = warning

    @api.depends("offline_certificate_valid_to", "offline_certificate_set")
    def _compute_offline_certificate_warning(self):
        now = fields.Datetime.now()
        for buffer in self:
            warning = False
            if buffer.offline_certificate_set and buffer.offline_certificate_valid_to:
                days = (buffer.offline_certificate_valid_to - now).days
                if buffer.offline_certificate_valid_to < now:
                    warning = _(
                        "The Offline certificate has expired: offline invoices get no KOD II. Set a new one."
                    )
                elif days <= CERTIFICATE_WARNING_DAYS:
                    warning = _(
                        "The Offline certificate expires in %(days)s days: set a new one before it does.",
                        days=days,
                    )
            buffer.offline_certificate_warning = warning

    def _offline_credential(self):
        """The Offline certificate with its key, checked for KOD II now; UserError says why it cannot be."""
        self.ensure_one()
        from ksefnet_core.certificates import CredentialError, load_credential
        from ksefnet_core.offline import OfflineCertificateError, check_offline_credential

        me = self.sudo()
        if not me.offline_certificate_set or not me.offline_certificate_file:
            raise user_error(
                self.env,
                _lt("Buffer %(name)s holds no Offline certificate: KOD II cannot be signed.", name=me.name),
            )
        password = self._unseal(me.offline_certificate_password).decode("utf-8") or None
        try:
            credential = load_credential(self._unseal(me.offline_certificate_file), password)
            check_offline_credential(credential)
        except (CredentialError, OfflineCertificateError) as exc:
            raise user_error(
                self.env,
                _lt("KOD II cannot be signed: %(reason)s", reason=self._offline_certificate_problem(exc)),
            ) from None
        return credential

    @api.model
    def _offline_certificate_problem(self, exc):
        """Why a certificate cannot sign KOD II, as a message part (render it where text is needed)."""
        code, day = getattr(exc, "code", None), getattr(exc, "day", None)
        day = day.isoformat() if day else "-"
        if code == "authentication":
            return _lt(
                "this is an Authentication-type KSeF certificate (key usage Digital Signature); KOD II must be "
                "signed with an Offline-type KSeF certificate (key usage Non-Repudiation)."
            )
        if code == "not_offline":
            return _lt("this is not an Offline-type KSeF certificate (key usage Non-Repudiation).")
        if code == "expired":
            return _lt(
                "the Offline certificate expired on %(date)s. Enrol a new Offline certificate in KSeF.",
                date=day,
            )
        if code == "not_yet_valid":
            return _lt("the Offline certificate is valid only from %(date)s.", date=day)
        from .ksefnet_errors import credential_reason

        return credential_reason(exc)  # a certificate that cannot be read at all

    def action_set_offline_certificate(self):
        return self._open_credentials_wizard("offline_certificate")

    def _store_offline_credential(self, credential, stored, password):
        """Keep ``credential`` (checked for KOD II by the caller) as the buffer's Offline certificate:
        ``stored`` is its PKCS#12 (or PEM) protected by ``password``; both sealed."""
        self.ensure_one()
        self.sudo().write(
            {
                "offline_certificate_file": self._seal(stored),
                "offline_certificate_password": self._seal(password),
                "offline_certificate_set": True,
                "offline_certificate_subject": credential.subject_text,
                "offline_certificate_serial": credential.serial_hex,
                "offline_certificate_valid_from": credential.not_before.replace(tzinfo=None),
                "offline_certificate_valid_to": credential.not_after.replace(tzinfo=None),
            }
        )

    def action_enrol_offline_certificate(self):
        """Obtain an Offline certificate from KSeF for the buffer: a new key pair and CSR here, KSeF's
        certificate API (it needs the buffer to log in with a certificate, not a token), then kept like one
        that was uploaded. The private key never leaves the buffer."""
        self.ensure_one()
        self.check_access("write")
        if not self.env.user.has_group("ksefnet_buffer.group_ksef_admin"):
            raise UserError(_("Only KSeF administrators can set credentials."))
        import secrets

        from ksefnet_core import ksef_certificates
        from ksefnet_core.certificates import credential_to_pkcs12
        from ksefnet_core.errors import KsefError
        from ksefnet_core.offline import OfflineCertificateError, check_offline_credential

        from .ksefnet_document import describe_ksef_error

        if self.sudo().auth_method != "certificate":
            raise UserError(
                _(
                    "KSeF issues certificates only to a subject that logged in with a certificate (XAdES): set "
                    "the buffer's certificate first, or upload an Offline certificate obtained in KSeF."
                )
            )
        poll = float(self.env["ir.config_parameter"].sudo().get_param("ksefnet_buffer.enrol_poll", 1.0))
        try:
            credential = ksef_certificates.enroll(
                self._ksef_client(),
                f"KSeFNet {self.name}"[:100],
                ksef_certificates.OFFLINE,
                poll_interval=poll,
            )
            check_offline_credential(credential)
        except (KsefError, ValueError) as exc:
            reason = render(
                self.env,
                self._offline_certificate_problem(exc)
                if isinstance(exc, OfflineCertificateError)
                else describe_ksef_error(self.env, exc),
            )
            raise UserError(
                _("KSeF did not issue an Offline certificate: %(reason)s", reason=reason)
            ) from None
        password = secrets.token_urlsafe(24)
        self._store_offline_credential(credential, credential_to_pkcs12(credential, password), password)
        return self._notify(
            _("Offline certificate"),
            _(
                "KSeF issued the Offline certificate %(serial)s, valid until %(date)s; it signs KOD II from now on.",
                serial=credential.serial_hex,
                date=credential.not_after.date().isoformat(),
            ),
            "success",
        )

    def _compute_counts(self):
        data = self.env["ksefnet.document"]._read_group(
            [("buffer_id", "in", self.ids)], ["buffer_id", "direction", "state"], ["__count"]
        )
        counts = {(buffer.id, direction, state): count for buffer, direction, state, count in data}
        for buffer in self:
            for state in ("waiting", "processing", "sent", "failure", "error"):
                buffer[f"count_{state}"] = counts.get((buffer.id, "sales", state), 0)
            buffer.count_purchases = sum(
                n for (b, d, _s), n in counts.items() if b == buffer.id and d == "purchase"
            )
        due = self.env["ksefnet.document"]._read_group(
            [("buffer_id", "in", self.ids), ("offline_deadline_near", "=", True)], ["buffer_id"], ["__count"]
        )
        due_counts = {buffer.id: count for buffer, count in due}
        for buffer in self:
            buffer.count_offline_due = due_counts.get(buffer.id, 0)

    # -- KSeF connection ------------------------------------------------------------------------------
    def _environment(self):
        self.ensure_one()
        if self.environment == "simulator":
            url = self.api_url or self.env["ir.config_parameter"].sudo().get_param(
                "ksefnet_buffer.simulator_url", DEFAULT_SIMULATOR_URL
            )
            return environments.Environment.custom(url, name="SIMULATOR")
        if self.environment == "custom":
            return environments.Environment.custom(self.api_url)
        return environments.BY_NAME[self.environment.upper()]

    def _credentials_key(self):
        """A digest identifying the current URL and credentials (never the credentials themselves)."""
        self.ensure_one()
        me = self.sudo()
        digest = hashlib.sha256()
        for part in (
            me._environment().api_base,
            me.nip,
            me.auth_method or "",
            me.subject_identifier_type or "",
            me.ksef_token or "",  # sealed values: a new credential gives a new digest
            me.certificate_file or "",
            me.certificate_password or "",
        ):
            digest.update(part.encode() if isinstance(part, str) else part)
            digest.update(b"\0")
        return digest.hexdigest()

    @api.model
    def _sealing_key(self):
        """The key from the database secret (used when the configuration file gives none)."""
        secret = self.env["ir.config_parameter"].sudo().get_param("database.secret")
        if not secret:
            raise user_error(self.env, _lt("The database has no secret to protect KSeF credentials with."))
        return derive_key(secret, "ksefnet_buffer credentials")

    @api.model
    def _file_sealing_key(self):
        """The key from Odoo's configuration file (option ``ksefnet_sealing_key``), or None. With it, the
        credentials cannot be opened from a database dump alone."""
        secret = (config.get(CONFIG_SEALING_KEY) or "").strip()
        return derive_key(secret, "ksefnet_buffer credentials (configuration file)") if secret else None

    @api.model
    def _seal(self, value):
        """Seal a secret (text or bytes) for storage, with the configuration file's key when there is one;
        False stays False."""
        if not value:
            return False
        data = value.encode("utf-8") if isinstance(value, str) else value
        file_key = self._file_sealing_key()
        if file_key:
            return seal(file_key, data, FILE_SEALED_PREFIX)
        return seal(self._sealing_key(), data)

    @api.model
    def _unseal(self, value):
        """The bytes of a sealed secret (a value stored before sealing existed is returned as it is). When the
        key it needs is missing or wrong: a clear error, and the sealed value stays as it is."""
        if not value:
            return b""
        if value.startswith(FILE_SEALED_PREFIX):
            file_key = self._file_sealing_key()
            if not file_key:
                raise user_error(
                    self.env,
                    _lt(
                        "The KSeF credentials were sealed with the key from Odoo's configuration file "
                        "(option %(option)s), which this server does not have. Put the same key back in the "
                        "configuration file and restart Odoo: the credentials are kept.",
                        option=CONFIG_SEALING_KEY,
                    ),
                )
            try:
                return unseal(file_key, value, FILE_SEALED_PREFIX)
            except ValueError:
                raise user_error(
                    self.env,
                    _lt(
                        "The KSeF credentials cannot be opened with the key in Odoo's configuration file "
                        "(option %(option)s): it is not the key they were sealed with. Put the original key "
                        "back: the credentials are kept.",
                        option=CONFIG_SEALING_KEY,
                    ),
                ) from None
        if not value.startswith(SEALED_PREFIX):
            return value.encode("utf-8")
        try:
            return unseal(self._sealing_key(), value)
        except ValueError:
            raise user_error(
                self.env,
                _lt(
                    "The KSeF credentials cannot be opened: the database secret changed since they were "
                    "stored. Set the credentials again."
                ),
            ) from None

    def _reseal_credentials(self):
        """Seal again, with the configuration file's key, the secrets sealed with the database's key (after
        an administrator added ``ksefnet_sealing_key``). Returns how many buffers changed."""
        if not self._file_sealing_key():
            return 0
        changed = 0
        for buffer in self.sudo().with_context(active_test=False):
            values = {
                name: self._seal(self._unseal(buffer[name]))
                for name in SECRET_FIELDS
                if buffer[name] and not buffer[name].startswith(FILE_SEALED_PREFIX)
            }
            if values:
                buffer.write(values)
                changed += 1
        return changed

    def _forget_clients(self):
        with _CLIENTS_LOCK:
            for buffer_id in self.ids:
                entry = _CLIENTS.pop(buffer_id, None)
                if entry:
                    entry[1].close()

    def _ksef_client(self, fresh=False):
        """An authenticated KSeF client for this buffer (cached; tokens are refreshed by the client)."""
        self.ensure_one()
        if not self.sudo().credentials_set:
            raise user_error(
                self.env,
                _lt(
                    "Buffer %(name)s has no KSeF credentials: set a token or a certificate first.",
                    name=self.name,
                ),
            )
        key = self._credentials_key()
        with _CLIENTS_LOCK:
            entry = _CLIENTS.get(self.id)
            if entry and entry[0] == key and not fresh:
                return entry[1]
        # One number (seconds) rather than a (connect, read) pair: Odoo's HTTP test guard compares it with 10.
        timeout = float(self.env["ir.config_parameter"].sudo().get_param("ksefnet_buffer.http_timeout", 60))
        client = KsefClient(self._environment(), timeout=timeout, throttle=Throttle())
        client.throttle_max_wait = THROTTLE_MAX_WAIT
        self._authenticate(client)
        try:  # pace requests by the limits KSeF reports for this context (TEST may have changed them)
            client.throttle.update_limits(client.rate_limits())
        except KsefError as exc:
            _logger.info(
                "KSeF rate limits not available for buffer %s (%s); using the defaults", self.nip, exc
            )
        with _CLIENTS_LOCK:
            old = _CLIENTS.pop(self.id, None)
            _CLIENTS[self.id] = (key, client)
        if old:
            old[1].close()
        return client

    def _warning_values(self):
        """Values for ``ksef_warning``/``ksef_warning_at`` from the warnings this buffer's KSeF client received
        since they were last written (empty when there are none)."""
        self.ensure_one()
        with _CLIENTS_LOCK:
            entry = _CLIENTS.get(self.id)
            warnings = list(entry[1].system_warnings) if entry else []
        if not warnings:
            return {}
        latest = warnings[-1].received.replace(tzinfo=None)
        if self.ksef_warning_at and latest <= self.ksef_warning_at:
            return {}
        lines = [
            f"{fields.Datetime.to_string(w.received.replace(tzinfo=None))} {w.method} {w.path}: {w}"
            for w in warnings[-WARNINGS_SHOWN:]
        ]
        return {"ksef_warning": "\n".join(reversed(lines)), "ksef_warning_at": latest}

    def _authenticate(self, client):
        """Authenticate ``client`` with this buffer's token or certificate, in the buffer's NIP context."""
        me = self.sudo()
        if me._file_sealing_key() and any(
            me[f] and not me[f].startswith(FILE_SEALED_PREFIX) for f in SECRET_FIELDS
        ):
            me._reseal_credentials()  # the administrator added the configuration file's key since
        context = ContextIdentifier.nip(me.nip)
        if me.auth_method == "token":
            token = self._unseal(me.ksef_token).decode("utf-8")
            return authenticate_with_ksef_token(client, token, context, poll_interval=0.3)
        from ksefnet_core.certificates import load_credential

        password = self._unseal(me.certificate_password).decode("utf-8") or None
        credential = load_credential(self._unseal(me.certificate_file), password)
        return authenticate_with_certificate(
            client, credential, context, subject_identifier_type=me.subject_identifier_type, poll_interval=0.3
        )

    def action_test_connection(self):
        """Authenticate now and tell the administrator, in plain words, whether it worked."""
        self.ensure_one()
        self.check_access("write")  # it authenticates with the buffer's secrets and writes the buffer
        from .ksefnet_document import describe_ksef_error

        try:
            client = self._ksef_client(fresh=True)
            limits = client.context_limits()
            online = limits.get("onlineSession") or {}
            message = _lt(
                "Connected to %(env)s as NIP %(nip)s. KSeF accepts invoices up to %(size)s MB and %(count)s "
                "invoices per session.",
                env=Label("ksefnet.buffer", "environment", self.environment),
                nip=self.nip,
                size=online.get("maxInvoiceSizeInMB", "?"),
                count=online.get("maxInvoices", "?"),
            )
            kind = "success"
        except (KsefError, UserError, ValueError) as exc:
            message = describe_ksef_error(self.env, exc)
            kind = "danger"
        self.sudo().write(
            {
                "last_connection_at": fields.Datetime.now(),
                "last_connection_result": message,
                **self._warning_values(),
            }
        )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("KSeF connection"),
                "message": render(self.env, message),
                "type": kind,
                "sticky": kind != "success",
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    def action_set_token(self):
        return self._open_credentials_wizard("token")

    def action_set_certificate(self):
        return self._open_credentials_wizard("certificate")

    def _open_credentials_wizard(self, method):
        self.ensure_one()
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "name": {
                "token": _("Set KSeF token"),
                "certificate": _("Set certificate"),
                "offline_certificate": _("Set Offline certificate"),
            }[method],
            "res_model": "ksefnet.credentials.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_buffer_id": self.id, "default_method": method},
        }

    def action_open_documents(self):
        """The buffer's documents: sales of one status (``ksefnet_state``) or purchases
        (``ksefnet_direction``), as the Overview's buttons ask."""
        self.ensure_one()
        direction = self.env.context.get("ksefnet_direction") or "sales"
        xmlid = "action_ksefnet_purchases" if direction == "purchase" else "action_ksefnet_sales"
        action = self.env["ir.actions.act_window"]._for_xml_id(f"ksefnet_buffer.{xmlid}")
        action["domain"] = [("buffer_id", "=", self.id), ("direction", "=", direction)]
        state = self.env.context.get("ksefnet_state")
        if state:
            action["domain"].append(("state", "=", state))
        if self.env.context.get("ksefnet_offline_due"):
            action["domain"].append(("offline_deadline_near", "=", True))
        action["context"] = {"default_buffer_id": self.id}
        return action

    def action_send_now(self):
        self.check_access("write")  # the buffer's own operations are its administrators'
        self.sudo().write({"engine_next_run_at": fields.Datetime.now()})
        self.env["ksefnet.sender"]._trigger()
        waiting = sum(self.mapped("count_waiting")) + sum(self.mapped("count_error"))
        return self._notify(
            _("Sending started"),
            _("Documents waiting or to retry: %(count)s. The Sending tab shows the progress.", count=waiting),
        )

    def action_download_now(self):
        self.check_access("write")
        self.env["ksefnet.downloader"]._trigger()
        return self._notify(
            _("Download started"),
            _("New invoices appear among the purchases; the Downloading tab shows the progress."),
        )

    def _notify(self, title, message, kind="info"):
        """A notification for a button that starts work in the background (it says what it started)."""
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"title": title, "message": message, "type": kind, "sticky": False},
        }

    # -- the engines' transactions: one worker per buffer and operation, one transaction per buffer --------
    @api.model
    def _commit(self, step):
        """Commit a finished step of an engine (``step`` names it). Tests replace this method to record the
        steps in order (their transaction cannot be committed); the tests of concurrency commit for real."""
        self.env.cr.commit()

    @api.model
    def _rollback(self):
        self.env.cr.rollback()

    def _row_write(self, step, work):
        """Run ``work()`` as a short transaction of its own on this buffer's row and commit it (as ``step``).

        Odoo's transactions are REPEATABLE READ: when another worker updated the row meanwhile (the other
        engine's lease, a report), PostgreSQL refuses the write; it is then rolled back and tried again on a
        fresh snapshot, so a lease is always given back and a report never fails a round."""
        for attempt in range(ROW_WRITE_ATTEMPTS):
            try:
                with mute_logger("odoo.sql_db"):  # an expected refusal, retried: not an error in the log
                    result = work()
                    self._commit(step)
                return result
            except psycopg2.errors.SerializationFailure:
                self._rollback()
                if attempt == ROW_WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _take_lease(self, operation):
        """Take this buffer's lease for ``operation`` ("send", "download"): the lease's owner token, or False
        when another worker holds it. A lease is committed at once and expires after LEASE_SECONDS, so a
        worker that dies (process killed, host gone) cannot keep the buffer locked."""
        self.ensure_one()
        assert operation in LEASE_OPERATIONS, operation
        owner = uuid.uuid4().hex

        def take():
            self.env.cr.execute(
                f"UPDATE ksefnet_buffer SET {operation}_lease_until = (now() at time zone 'UTC') "  # noqa: S608
                f"+ make_interval(secs => %s), {operation}_lease_owner = %s "
                f"WHERE id = %s AND {_lease_free(operation)} RETURNING id",
                [LEASE_SECONDS, owner, self.id],
            )
            return bool(self.env.cr.fetchone())

        return owner if self._row_write(f"{operation}_lease", take) else False

    def _end_lease(self, operation, owner):
        """Give the lease back (only our own: an expired lease another worker took stays theirs)."""
        self.ensure_one()
        assert operation in LEASE_OPERATIONS, operation

        def release():
            self.env.cr.execute(
                f"UPDATE ksefnet_buffer SET {operation}_lease_until = NULL, {operation}_lease_owner = NULL "  # noqa: S608
                f"WHERE id = %s AND {operation}_lease_owner = %s",
                [self.id, owner],
            )

        self._row_write(f"{operation}_release", release)

    def _engine_report(self, rnd, next_run_at):
        """Write on the buffer (and in the log) what the sending round did and why it waits, until when."""
        self.ensure_one()
        lines = list({render(self.env, p, "en_US"): p for p in rnd.problems}.values())  # each problem once
        lines += [text for _seconds, text in sorted(rnd.waits.values(), key=lambda w: w[0])]
        if next_run_at:
            lines.append(_lt("Next step at %(when)s (UTC).", when=fields.Datetime.to_string(next_run_at)))
        elif not lines:
            lines.append(_lt("Nothing to send."))
        note = Join("\n", lines)
        if rnd.waits or rnd.problems:
            _logger.info(
                "KSeF sending for buffer %s: %s", self.nip, render(self.env, note, "en_US").replace("\n", " ")
            )
        values = {
            "engine_note": note,
            "engine_next_run_at": next_run_at,
            "engine_last_run_at": fields.Datetime.now(),
            **self._warning_values(),
        }
        if getattr(rnd, "ksef_answered", None) is not None:  # what the round tells about KSeF's availability
            values.update(self._record_answers(rnd.ksef_answered))
        self._row_write("report", lambda: self.sudo().write(values) and self.env.flush_all())

    @api.model
    def _run_engine_jobs(self, engine, enabled_field, run_seconds=None):
        """Run ``engine``'s rounds (``_run_buffer``) for every buffer with ``enabled_field`` set that has work,
        interleaved, each buffer in its own transaction; wait for the next useful moment while the run lasts.

        One buffer's failure (no credentials, an exception, an SQL error) is rolled back and recorded on that
        buffer; the others go on. Returns the number of documents that reached a final state."""
        end = time.monotonic() + (RUN_SECONDS if run_seconds is None else run_seconds)
        done = 0
        scheduled = enabled_field == "send_enabled"  # the sender says when it wants to run next
        while True:
            for buffer_id in self._due_engine_buffers(enabled_field, scheduled):
                done += self._run_isolated(engine, buffer_id)
                if time.monotonic() > end:
                    break
            upcoming = scheduled and self._next_engine_step()
            if not upcoming:
                break
            # at least a moment: a buffer whose lease another worker holds is due again at once
            wait = max(0.5, (upcoming - fields.Datetime.now()).total_seconds())
            if time.monotonic() + wait > end:
                self.env[engine].sudo()._trigger(upcoming)
                break
            time.sleep(wait)
        self.env["ir.cron"]._notify_progress(done=done, remaining=0)
        return done

    @api.model
    def _due_engine_buffers(self, enabled_field, scheduled):
        """Ids of the buffers an engine should run now, leaving out those another runner holds. For the sender:
        those whose next step is due, that never ran, or that got documents to send since their last round
        (submitted, queued again)."""
        with self.pool.cursor() as cr:  # a fresh snapshot: the rounds commit in their own transactions
            if not scheduled:
                assert enabled_field in ("send_enabled", "download_enabled"), enabled_field
                cr.execute(
                    f"SELECT id FROM ksefnet_buffer WHERE active AND credentials_set AND {enabled_field} "  # noqa: S608
                    f"AND {_lease_free('download')} "
                    "ORDER BY id"
                )
                return [row[0] for row in cr.fetchall()]
            cr.execute(
                f"""
                SELECT b.id FROM ksefnet_buffer b
                 WHERE b.active AND b.send_enabled
                   AND {_lease_free("send", "b.")}
                   AND (b.engine_last_run_at IS NULL
                        OR b.engine_next_run_at <= (now() at time zone 'UTC')
                        OR EXISTS (SELECT 1 FROM ksefnet_document d
                                    WHERE d.buffer_id = b.id AND d.state = 'waiting'
                                      AND d.write_date > b.engine_last_run_at))
                 ORDER BY b.engine_next_run_at NULLS FIRST, b.id
                """  # noqa: S608 - the lease condition is this module's constant SQL
            )
            return [row[0] for row in cr.fetchall()]

    @api.model
    def _next_engine_step(self):
        """The earliest next step the sender has planned for a buffer (False: none)."""
        with self.pool.cursor() as cr:
            cr.execute(
                "SELECT min(engine_next_run_at) FROM ksefnet_buffer WHERE active AND send_enabled "  # noqa: S608
                f"AND {_lease_free('send')}"
            )
            return cr.fetchone()[0] or False

    @api.model
    def _run_isolated(self, engine, buffer_id):
        """One round of ``engine`` for one buffer in a transaction of its own; failures stay with the buffer."""
        with self.pool.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, dict(self.env.context))
            buffer = env["ksefnet.buffer"].browse(buffer_id)
            try:
                result = env[engine]._run_buffer(buffer)
                cr.commit()
                return result if isinstance(result, int) else result.done
            except Exception as exc:  # noqa: BLE001 - recorded on the buffer, the other buffers go on
                cr.rollback()
                _logger.exception("KSeF %s for buffer %s failed", engine, buffer_id)
                from .ksefnet_document import describe_ksef_error

                retry = fields.Datetime.now() + timedelta(minutes=1)
                buffer.sudo().write(
                    {
                        "engine_note": _lt(
                            "The last step failed: %(reason)s", reason=describe_ksef_error(env, exc)
                        ),
                        "engine_last_run_at": fields.Datetime.now(),
                        **({"engine_next_run_at": retry} if engine == "ksefnet.sender" else {}),
                    }
                )
                cr.commit()
                return 0

    def _sync_for(self, subject_type):
        """The download progress record of one subject type (created on first use)."""
        self.ensure_one()
        sync = self.sync_ids.filtered(lambda s: s.subject_type == subject_type)
        if not sync:
            sync = self.env["ksefnet.buffer.sync"].create(
                {"buffer_id": self.id, "subject_type": subject_type}
            )
        return sync

    def _enabled_subject_types(self):
        self.ensure_one()
        return [
            subject
            for subject, enabled in (
                ("Subject2", self.download_received),
                ("Subject1", self.download_own),
                ("Subject3", self.download_third_party),
                ("SubjectAuthorized", self.download_authorized),
            )
            if enabled
        ]
