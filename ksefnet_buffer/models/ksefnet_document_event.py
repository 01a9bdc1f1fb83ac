from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from .ksefnet_document import STATES
from .ksefnet_message import message_field, source_field, template_field


class KsefnetDocumentEvent(models.Model):
    """One entry of a document's history: a status change or a step, with KSeF's code and reference.

    Append-only: entries are never edited or deleted (they go away only with their document).
    """

    _name = "ksefnet.document.event"
    _inherit = ["ksefnet.message.mixin"]
    _description = "KSeF document event"
    _order = "id desc"
    _rec_name = "to_state"
    _rec_names_search = ["reference"]

    document_id = fields.Many2one("ksefnet.document", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="document_id.company_id", store=True)
    date = fields.Datetime(required=True, default=fields.Datetime.now, readonly=True)
    from_state = fields.Selection(STATES, readonly=True)
    to_state = fields.Selection(STATES, required=True, readonly=True)
    ksef_code = fields.Integer("KSeF code", readonly=True)
    message = message_field("message", "Message")
    message_source = source_field("Message (as written)")
    message_template = template_field("Message (template)")
    reference = fields.Char(
        readonly=True, index="trigram", help="KSeF session, invoice or KSeF number reference."
    )
    user_id = fields.Many2one("res.users", default=lambda self: self.env.uid, readonly=True)

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            raise AccessError(_("The history of a KSeF document is written by the buffer only."))
        return super().create(vals_list)

    def write(self, vals):
        raise UserError(_("The history of a KSeF document cannot be changed."))

    def unlink(self):
        raise UserError(_("The history of a KSeF document cannot be deleted."))
