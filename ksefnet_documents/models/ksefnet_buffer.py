from odoo import fields, models


class KsefnetBuffer(models.Model):
    _inherit = "ksefnet.buffer"

    accepted_third_party_roles = fields.Char(
        default="2,4,6,8,10",
        help="FA(3) roles (Podmiot3/Rola) in which the company may be named as a third party and still be the "
        "invoice's addressee: 2 recipient, 4 additional buyer, 6 payer, 8 and 10 recipients in a local "
        "government unit or VAT group.",
    )
    company_aliases = fields.Text(
        "Other company names",
        help="Other names under which suppliers address the company (trade names, former names), one per "
        "line; the validity check compares the buyer's name with these and the company's name.",
    )
    catalog_ids = fields.One2many("ksefnet.catalog", "buffer_id", "Catalogs")
    rule_ids = fields.One2many("ksefnet.classification.rule", "buffer_id", "Classification rules")
    reclassify_remaining = fields.Integer(
        "Documents left to reclassify",
        compute="_compute_reclassify_remaining",
        help="Documents queued for reclassification in the background.",
    )

    def unlink(self):
        result = super().unlink()
        self.env["ksefnet.document"]._forget_compiled_rules()  # their rules and shops went with them
        return result

    def _compute_reclassify_remaining(self):
        counts = dict(
            self.env["ksefnet.document"]
            .sudo()
            ._read_group(
                [("buffer_id", "in", self.ids), ("reclassify_pending", "=", True)], ["buffer_id"], ["__count"]
            )
        )
        for buffer in self:
            buffer.reclassify_remaining = counts.get(buffer._origin, 0)

    def _company_names(self):
        self.ensure_one()
        return [
            self.company_id.name,
            *(n.strip() for n in (self.company_aliases or "").splitlines() if n.strip()),
        ]

    def _accepted_roles(self):
        self.ensure_one()
        return {
            int(r) for r in (self.accepted_third_party_roles or "").replace(" ", "").split(",") if r.isdigit()
        }
