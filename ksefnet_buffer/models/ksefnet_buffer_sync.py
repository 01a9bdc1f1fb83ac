from odoo import fields, models

from .ksefnet_buffer import SUBJECT_TYPES
from .ksefnet_message import message_field, source_field, template_field


class KsefnetBufferSync(models.Model):
    """Where the download of one subject type of one buffer stands: the resume point and the last run.

    The resume point is KSeF's permanent-storage high-water mark reached so far; it is written only after
    the invoices below it are committed, so a crash repeats at most one batch (and duplicates are refused by
    the unique KSeF number per buffer).
    """

    _name = "ksefnet.buffer.sync"
    _inherit = ["ksefnet.message.mixin"]
    _description = "KSeF download progress"
    _order = "buffer_id, subject_type"
    _rec_name = "subject_type"

    buffer_id = fields.Many2one("ksefnet.buffer", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="buffer_id.company_id", store=True)
    subject_type = fields.Selection(SUBJECT_TYPES, required=True)
    resume_point = fields.Datetime(
        help="Invoices stored in KSeF up to this moment have been downloaded; the next run starts here."
    )
    last_run_at = fields.Datetime(readonly=True)
    last_success_at = fields.Datetime(readonly=True)
    last_result = message_field("last_result", "Last Result", fields.Char)
    last_result_source = source_field("Last Result (as written)", fields.Char)
    last_result_template = template_field("Last Result (template)")
    last_error = message_field("last_error", "Last Error")
    last_error_source = source_field("Last Error (as written)")
    last_error_template = template_field("Last Error (template)")
    downloaded_count = fields.Integer("Downloaded in total", readonly=True)
    running = fields.Boolean(readonly=True)
    progress_done = fields.Integer(readonly=True)
    progress_note = message_field("progress_note", "Progress Note", fields.Char)
    progress_note_source = source_field("Progress Note (as written)", fields.Char)
    progress_note_template = template_field("Progress Note (template)")

    _sql_constraints = [
        (
            "subject_unique",
            "unique(buffer_id, subject_type)",
            "One download record per buffer and subject type.",
        ),
    ]
