from odoo import fields, models


class KsefnetInvoiceKind(models.Model):
    """The FA(3) invoice kinds (RodzajFaktury), as records to choose in rules and permissions."""

    _name = "ksefnet.invoice.kind"
    _inherit = ["ksefnet.cache.source"]  # the compiled classification rules hold the codes of their kinds
    _description = "KSeF invoice kind"
    _order = "sequence, id"

    code = fields.Char(required=True, readonly=True)
    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)

    _sql_constraints = [("code_unique", "UNIQUE(code)", "Each invoice kind exists once.")]
