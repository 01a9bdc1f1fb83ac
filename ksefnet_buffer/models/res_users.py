from odoo import _, api, fields, models
from odoo.exceptions import AccessError

ROLES = [("none", "No access"), ("user", "KSeF user"), ("admin", "KSeF administrator")]


class ResUsers(models.Model):
    _inherit = "res.users"

    ksefnet_role = fields.Selection(
        ROLES,
        "KSeF role",
        compute="_compute_ksefnet_role",
        inverse="_inverse_ksefnet_role",
        help="KSeF user: sees and handles the documents their permissions and shops give them. KSeF "
        "administrator: also buffers, credentials, catalogs, rules, shops and permissions.",
    )

    @api.depends("groups_id")
    def _compute_ksefnet_role(self):
        admin = self.env.ref("ksefnet_buffer.group_ksef_admin")
        user = self.env.ref("ksefnet_buffer.group_ksef_user")
        for person in self:
            groups = person.sudo().groups_id
            person.ksefnet_role = "admin" if admin in groups else "user" if user in groups else "none"

    def _inverse_ksefnet_role(self):
        if not (self.env.su or self.env.user.has_group("ksefnet_buffer.group_ksef_admin")
                or self.env.user.has_group("base.group_erp_manager")):  # fmt: skip
            raise AccessError(_("Only administrators give KSeF roles."))
        admin = self.env.ref("ksefnet_buffer.group_ksef_admin")
        user = self.env.ref("ksefnet_buffer.group_ksef_user")
        for person in self.sudo():
            if person.ksefnet_role == "admin":
                person.groups_id = [(4, admin.id)]
            elif person.ksefnet_role == "user":
                person.groups_id = [(3, admin.id), (4, user.id)]
            else:
                person.groups_id = [(3, admin.id), (3, user.id)]
