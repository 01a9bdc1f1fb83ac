from odoo import fields, models


class KsefnetTag(models.Model):
    _name = "ksefnet.tag"
    _description = "KSeF document tag"
    _order = "name"

    name = fields.Char(required=True, translate=True)
    color = fields.Integer()
    active = fields.Boolean(default=True)

    _sql_constraints = [("name_unique", "UNIQUE(name)", "A tag with this name already exists.")]

    def unlink(self):
        result = super().unlink()
        self.env["ksefnet.document"]._forget_compiled_rules()  # the rules that added them hold their ids
        return result
