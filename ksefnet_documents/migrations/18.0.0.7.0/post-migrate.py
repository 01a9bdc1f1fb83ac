"""18.0.0.7.0: a classification note is stored once (ksefnet.classification.note), not in every document."""

from odoo import SUPERUSER_ID, api
from odoo.addons.ksefnet_documents.models.ksefnet_document import move_notes


def migrate(cr, version):
    if version:
        move_notes(api.Environment(cr, SUPERUSER_ID, {}))
