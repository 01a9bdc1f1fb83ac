import base64
from datetime import datetime, timezone

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ksefnet_core.certificates import CertificateKind, CredentialError, load_credential
from ksefnet_core.errors import KsefError

from ..models.ksefnet_errors import credential_reason
from ..models.ksefnet_message import render

KIND_TO_FIELD = {
    CertificateKind.COMPANY_SEAL: "company_seal",
    CertificateKind.PERSONAL_NIP: "personal",
    CertificateKind.PERSONAL_PESEL: "personal_pesel",
    CertificateKind.OTHER: "other",
}


class KsefnetCredentialsWizard(models.TransientModel):
    """Configuration -> Settings -> "Set token" / "Set certificate" -> Save.

    The secret is checked and moved onto the buffer at once; the wizard line is then emptied, so the
    secret stays only in the buffer's administrator-only fields and is never shown again.
    """

    _name = "ksefnet.credentials.wizard"
    _description = "Set KSeF credentials"

    buffer_id = fields.Many2one("ksefnet.buffer", required=True, ondelete="cascade")
    method = fields.Selection(
        [
            ("token", "KSeF token"),
            ("certificate", "Certificate"),
            ("offline_certificate", "Offline certificate (KOD II)"),
        ],
        required=True,
    )
    ksef_token = fields.Char("KSeF token")
    certificate_file = fields.Binary(
        "Certificate file", help="PKCS#12 (.p12/.pfx) or PEM with the private key."
    )
    certificate_filename = fields.Char()
    key_file = fields.Binary("Private key file", help="Only when the key is in a separate PEM file.")
    certificate_password = fields.Char("Password")
    verify = fields.Boolean(
        "Check with KSeF before saving",
        default=True,
        help="Authenticate with the new credentials first and keep the previous ones if KSeF refuses them. "
        "Switch it off only when KSeF cannot be reached and the credentials are known to be right.",
    )
    subject_identifier_type = fields.Selection(
        [
            ("certificateSubject", "Certificate subject"),
            ("certificateFingerprint", "Certificate fingerprint"),
        ],
        default="certificateSubject",
        required=True,
    )

    # The text secrets are sealed before they reach the database (see ksefnet.buffer._seal), so neither
    # this transient table nor an SQL log ever holds them in clear.
    _SEALED_FIELDS = ("ksef_token", "certificate_password")

    def _sealed(self, vals):
        Buffer = self.env["ksefnet.buffer"]
        return {k: Buffer._seal(v) if k in self._SEALED_FIELDS and v else v for k, v in vals.items()}

    @api.model_create_multi
    def create(self, vals_list):
        return super().create([self._sealed(vals) for vals in vals_list])

    def write(self, vals):
        return super().write(self._sealed(vals))

    def _secret(self, name):
        return self.env["ksefnet.buffer"]._unseal(self[name]).decode("utf-8")

    @api.model
    def _ensure_administrator(self):
        if not self.env.user.has_group("ksefnet_buffer.group_ksef_admin"):
            raise UserError(_("Only KSeF administrators can set credentials."))

    def _replace_credentials(self, buffer, values):
        """Put the new credentials on the buffer; with ``verify``, only if KSeF accepts them (else the
        previous ones stay, and the administrator reads why)."""
        from ..models.ksefnet_document import describe_ksef_error

        try:
            with self.env.cr.savepoint():
                buffer.write(values)
                buffer._forget_clients()
                if self.verify:
                    buffer._ksef_client(fresh=True)
        except (KsefError, UserError, ValueError) as exc:
            buffer._forget_clients()
            raise UserError(
                _(
                    "KSeF did not accept these credentials, so the previous ones are kept: %(reason)s",
                    reason=render(self.env, describe_ksef_error(self.env, exc)),
                )
            ) from None

    def _uploaded(self):
        """(certificate file bytes, separate key bytes or None, password or None) of the upload."""
        if not self.certificate_file:
            raise UserError(_("Choose the certificate file."))
        data = base64.b64decode(self.certificate_file)
        key = base64.b64decode(self.key_file) if self.key_file else None
        return data, key, self._secret("certificate_password") or None

    @staticmethod
    def _as_stored(data, key, credential, password):
        """What the buffer stores: the file as uploaded, or the certificate and its separate key in one
        password-protected PKCS#12."""
        if key is None:
            return data
        from ksefnet_core.certificates import credential_to_pkcs12

        return credential_to_pkcs12(credential, password)

    def _save_offline_certificate(self, buffer):
        """The Offline-type certificate that signs KOD II: kept beside the authentication credentials, which
        it never replaces. An Authentication certificate or an expired one is refused; the previous stays."""
        from ksefnet_core.offline import OfflineCertificateError, check_offline_credential

        data, key, password = self._uploaded()
        try:
            credential = load_credential(data, password, key_data=key)
            check_offline_credential(credential)
        except (CredentialError, OfflineCertificateError) as exc:
            raise UserError(
                _(
                    "The Offline certificate cannot be used: %(reason)s The previous one is kept.",
                    reason=render(self.env, buffer._offline_certificate_problem(exc)),
                )
            ) from None
        if credential.subject_nip and credential.subject_nip != buffer.nip:
            raise UserError(
                _(
                    "This Offline certificate belongs to NIP %(cert)s, not to the buffer's NIP %(nip)s. The "
                    "previous one is kept.",
                    cert=credential.subject_nip,
                    nip=buffer.nip,
                )
            )
        buffer._store_offline_credential(
            credential, self._as_stored(data, key, credential, password), password
        )

    def action_save(self):
        self.ensure_one()
        self._ensure_administrator()
        buffer = self.buffer_id.sudo()
        now = fields.Datetime.now()
        common = {
            "credentials_set": True,
            "credentials_updated_at": now,
            "credentials_updated_by": self.env.uid,
        }
        if self.method == "offline_certificate":
            self._save_offline_certificate(buffer)
        elif self.method == "token":
            token = self._secret("ksef_token").strip()
            if not token or any(c.isspace() for c in token) or len(token) > 1000:
                raise UserError(_("Paste the whole KSeF token, as KSeF showed it (one line, no spaces)."))
            self._replace_credentials(
                buffer,
                dict(
                    common,
                    auth_method="token",
                    ksef_token=buffer._seal(token),
                    certificate_file=False,
                    certificate_password=False,
                    certificate_kind=False,
                    certificate_subject=False,
                    certificate_serial=False,
                    certificate_fingerprint=False,
                    certificate_valid_from=False,
                    certificate_valid_to=False,
                ),
            )
        else:
            data, key, password = self._uploaded()
            try:
                credential = load_credential(data, password, key_data=key)
            except CredentialError as exc:
                reason = render(self.env, credential_reason(exc))
                raise UserError(_("The certificate cannot be used: %(reason)s.", reason=reason)) from None
            if credential.not_after < datetime.now(timezone.utc):
                raise UserError(
                    _(
                        "This certificate expired on %(date)s: KSeF refuses it. The previous credentials are kept.",
                        date=credential.not_after.date().isoformat(),
                    )
                )
            if credential.kind == CertificateKind.COMPANY_SEAL and credential.subject_nip != buffer.nip:
                raise UserError(
                    _(
                        "This company seal belongs to NIP %(seal)s, not to the buffer's NIP %(nip)s. The previous "
                        "credentials are kept.",
                        seal=credential.subject_nip or "-",
                        nip=buffer.nip,
                    )
                )
            if (
                credential.kind == CertificateKind.OTHER
                and self.subject_identifier_type != "certificateFingerprint"
            ):
                raise UserError(
                    _(
                        "This certificate names no NIP or PESEL: KSeF can identify it only by its fingerprint. "
                        "Choose 'Certificate fingerprint'."
                    )
                )
            # Store the certificate with its key in one password-protected PKCS#12 when it came in parts.
            stored = self._as_stored(data, key, credential, password)
            self._replace_credentials(
                buffer,
                dict(
                    common,
                    auth_method="certificate",
                    ksef_token=False,
                    certificate_file=buffer._seal(stored),
                    certificate_password=buffer._seal(password),
                    certificate_kind=KIND_TO_FIELD[credential.kind],
                    certificate_subject=credential.subject_text,
                    certificate_serial=credential.serial_hex,
                    certificate_fingerprint=credential.fingerprint_sha256_hex,
                    certificate_valid_from=credential.not_before.replace(tzinfo=None),
                    certificate_valid_to=credential.not_after.replace(tzinfo=None),
                    subject_identifier_type=self.subject_identifier_type,
                ),
            )
        # Do not keep the secret in the wizard's table.
        self.write(
            {"ksef_token": False, "certificate_file": False, "key_file": False, "certificate_password": False}
        )
        if self.verify:  # checked: the buffer's "last connection" says so, and the administrator sees it
            return buffer.action_test_connection()
        return {"type": "ir.actions.act_window_close"}
