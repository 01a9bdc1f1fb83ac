"""18.0.0.6.0: a document's matched rules are stored in its row (``rule_match``), not in a link table."""

from odoo.addons.ksefnet_documents.models.ksefnet_document import move_rule_links


def migrate(cr, version):
    if version:
        move_rule_links(cr)
