from odoo import api, fields, models


class KsefnetInvoiceKind(models.Model):
    """The FA(3) invoice kinds (RodzajFaktury), as records to choose in rules and permissions."""

    _name = "ksefnet.invoice.kind"
    _description = "KSeF invoice kind"
    _order = "sequence, id"

    code = fields.Char(required=True, readonly=True)
    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)

    _sql_constraints = [("code_unique", "UNIQUE(code)", "Each invoice kind exists once.")]

    # the compiled classification rules hold the codes of their kinds
    @api.model_create_multi
    def create(self, vals_list):
        kinds = super().create(vals_list)
        self.env["ksefnet.document"]._forget_compiled_rules()
        return kinds

    def write(self, vals):
        result = super().write(vals)
        self.env["ksefnet.document"]._forget_compiled_rules()
        return result

    def unlink(self):
        result = super().unlink()
        self.env["ksefnet.document"]._forget_compiled_rules()
        return result
