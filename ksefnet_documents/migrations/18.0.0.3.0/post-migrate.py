"""18.0.0.3.0: the shops' user groups have a category of their own (the KSeF category stays a chain)."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    category = env.ref("ksefnet_documents.module_category_ksefnet_shops")
    env["ksefnet.shop"].with_context(active_test=False).search([("group_id", "!=", False)]).group_id.write(
        {"category_id": category.id}
    )
