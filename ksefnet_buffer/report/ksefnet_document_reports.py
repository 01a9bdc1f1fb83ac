"""The printed invoice and UPO: only for those who may read the documents (checked before anything renders)."""

from odoo import api, models


class _ReadableDocumentReport(models.AbstractModel):
    _name = "ksefnet.document.report.mixin"
    _description = "Printed KSeF document"

    @api.model
    def _get_report_values(self, docids, data=None):
        docs = self.env["ksefnet.document"].browse(docids)
        docs.check_access("read")  # the same rights and record rules as opening the document
        return {"doc_ids": docs.ids, "doc_model": docs._name, "docs": docs, "data": data}


class ReportKsefnetInvoice(models.AbstractModel):
    _name = "report.ksefnet_buffer.report_ksefnet_invoice"
    _inherit = "ksefnet.document.report.mixin"
    _description = "Printed KSeF invoice"


class ReportKsefnetUpo(models.AbstractModel):
    _name = "report.ksefnet_buffer.report_ksefnet_upo"
    _inherit = "ksefnet.document.report.mixin"
    _description = "Printed KSeF UPO"
