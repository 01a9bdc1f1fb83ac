import base64
import binascii

from odoo import _, fields, models
from odoo.exceptions import UserError


class KsefnetCorrectionWizard(models.TransientModel):
    """Upload the corrected XML of an invoice KSeF rejected; it replaces the rejected one and is queued."""

    _name = "ksefnet.correction.wizard"
    _description = "Corrected invoice for KSeF"

    document_id = fields.Many2one("ksefnet.document", required=True, ondelete="cascade")
    rejection = fields.Text(related="document_id.last_message", string="Why KSeF rejected it")
    xml_file = fields.Binary("Corrected invoice (FA(3) XML)", required=True)
    xml_filename = fields.Char("File name")

    def action_apply(self):
        self.ensure_one()
        try:
            xml = base64.b64decode(self.xml_file or b"", validate=True)
        except (binascii.Error, ValueError):
            raise UserError(_("The file could not be read.")) from None
        self.document_id.action_correct(xml)  # checks the rights, validates the XML (a clear error if wrong)
        return {"type": "ir.actions.act_window_close"}
