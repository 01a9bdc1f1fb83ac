from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from .ksefnet_shop import _the_only_buffer


class KsefnetCatalog(models.Model):
    """A folder of KSeF documents: a tree per buffer (catalog, sub-catalog, any depth)."""

    _name = "ksefnet.catalog"
    _description = "KSeF document catalog"
    _parent_name = "parent_id"
    _parent_store = True
    _rec_name = "complete_name"
    _order = "complete_name"

    name = fields.Char(required=True, translate=False)
    complete_name = fields.Char("Full path", compute="_compute_complete_name", store=True, recursive=True)
    parent_id = fields.Many2one("ksefnet.catalog", "Parent catalog", index=True, ondelete="restrict")
    parent_path = fields.Char(index=True)
    child_ids = fields.One2many("ksefnet.catalog", "parent_id", "Sub-catalogs")
    buffer_id = fields.Many2one(
        "ksefnet.buffer",
        required=True,
        ondelete="cascade",
        index=True,
        default=lambda self: _the_only_buffer(self.env),
    )
    company_id = fields.Many2one(related="buffer_id.company_id", store=True, index=True)
    active = fields.Boolean(default=True)
    document_count = fields.Integer(compute="_compute_document_count")

    @api.depends("name", "parent_id.complete_name")
    def _compute_complete_name(self):
        for catalog in self:
            parent = catalog.parent_id.complete_name
            name = catalog.name or "…"  # a sub-catalog being named: not "False"
            catalog.complete_name = f"{parent} / {name}" if parent else catalog.name

    def _compute_document_count(self):
        """The documents of the catalog and of its sub-catalogs (as a folder counts): one grouped count for
        all the catalogs shown, summed up the tree by their parent paths."""
        saved = self.filtered("id")
        counts = (
            self.env["ksefnet.document"]._read_group(
                [("catalog_id", "child_of", saved.ids)], ["catalog_id"], ["__count"]
            )
            if saved
            else []
        )
        for catalog in self:
            prefix = catalog.id and catalog.parent_path
            catalog.document_count = (
                sum(n for found, n in counts if found.parent_path.startswith(prefix)) if prefix else 0
            )

    def unlink(self):
        result = super().unlink()
        self.env["ksefnet.document"]._forget_compiled_rules()  # rules filing into them hold their ids
        return result

    @api.constrains("parent_id")
    def _check_parent(self):
        if self._has_cycle():
            raise ValidationError(_("A catalog cannot be inside itself."))
        for catalog in self:
            if catalog.parent_id and catalog.parent_id.buffer_id != catalog.buffer_id:
                raise ValidationError(_("A sub-catalog belongs to the same buffer as its parent."))

    def action_add_subcatalog(self):
        self.ensure_one()
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "res_model": "ksefnet.catalog",
            "view_mode": "form",
            "target": "new",
            "context": {"default_parent_id": self.id, "default_buffer_id": self.buffer_id.id},
        }

    def action_open_documents(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("ksefnet_buffer.action_ksefnet_document")
        action["domain"] = [("catalog_id", "child_of", self.id)]
        action["context"] = {}
        return action
