"""Downloading every invoice of a buffer's NIP from KSeF, incrementally and without duplicates.

Per buffer and enabled subject type (received, own-issued, third party, authorised), the download moves
forward by KSeF's permanent-storage date up to its high-water mark. Each batch of invoices is committed
first; only then is the resume point advanced and committed. A crash in between repeats that batch, and the
unique KSeF number per buffer keeps the repeat from creating duplicates.
"""

import logging
from datetime import timedelta, timezone

from odoo import api, fields, models
from odoo.tools.translate import LazyTranslate

from ksefnet_core.download import IncrementalDownloader
from ksefnet_core.errors import KsefError
from ksefnet_core.throttle import ThrottleDeferred

from .ksefnet_document import describe_ksef_error

_logger = logging.getLogger(__name__)
_lt = LazyTranslate(__name__)

#: automatic mode uses export packages for a first download and after a pause longer than this
EXPORT_AFTER_PAUSE = timedelta(days=1)


class KsefnetDownloader(models.AbstractModel):
    _name = "ksefnet.downloader"
    _description = "KSeF downloading engine"

    @api.model
    def _trigger(self):
        cron = self.env.ref("ksefnet_buffer.ir_cron_ksefnet_download", raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger()

    @api.model
    def _cron_download(self):
        """Scheduled action: download for every buffer, each in its own transaction (failures stay there)."""
        return self.env["ksefnet.buffer"]._run_engine_jobs("ksefnet.downloader", "download_enabled")

    @api.model
    def _run_buffer(self, buffer):
        """Download what is new for every enabled subject type of ``buffer``; return the count created."""
        lease = buffer._take_lease("download")
        if not lease:
            _logger.info("KSeF download for buffer %s is already running elsewhere", buffer.nip)
            return 0
        created = 0
        try:
            syncs = [buffer._sync_for(subject) for subject in buffer._enabled_subject_types()]
            buffer._commit("download_syncs")
            try:
                client = buffer._ksef_client()
            except (KsefError, ValueError) as exc:
                message = describe_ksef_error(self.env, exc)
                for sync in syncs:
                    sync.write(
                        {"last_run_at": fields.Datetime.now(), "last_error": message, "running": False}
                    )
                buffer._commit("download_no_client")
                return 0
            for sync in syncs:
                created += self._download(buffer, client, sync)
        except Exception:
            buffer._rollback()
            raise
        finally:
            buffer._end_lease("download", lease)
        return created

    def _mode(self, buffer, sync):
        if buffer.download_mode != "auto":
            return buffer.download_mode
        if not sync.last_success_at or fields.Datetime.now() - sync.last_success_at > EXPORT_AFTER_PAUSE:
            return "export"
        return "metadata"

    def _download(self, buffer, client, sync):
        start = sync.resume_point or buffer.download_start_date or fields.Datetime.now() - timedelta(days=30)
        mode = self._mode(buffer, sync)
        sync.write(
            {
                "running": True,
                "last_run_at": fields.Datetime.now(),
                "progress_done": 0,
                "progress_note": _lt("Downloading from %(date)s...", date=start),
            }
        )
        buffer._commit("download_start")
        downloader = IncrementalDownloader(
            client, sync.subject_type, start.replace(tzinfo=timezone.utc), mode=mode, poll_interval=0.5
        )
        Document = self.env["ksefnet.document"]
        created = 0
        error = False
        try:
            for batch in downloader.batches():
                new_docs = Document.browse()
                for invoice in batch.invoices:
                    with self.env.cr.savepoint():
                        new_docs |= Document._create_downloaded(buffer, invoice, sync.subject_type)
                new_docs._on_arrival(new=True)
                buffer._commit("download_documents")  # the documents first...
                created += len(new_docs)
                sync.write(
                    {
                        "resume_point": batch.resume_point.astimezone(timezone.utc).replace(tzinfo=None),
                        "downloaded_count": sync.downloaded_count + len(new_docs),
                        "progress_done": created,
                        "progress_note": _lt(
                            "%(count)s new invoices, up to %(date)s.",
                            count=created,
                            date=batch.resume_point.strftime("%Y-%m-%d %H:%M:%S"),
                        ),
                    }
                )
                buffer._commit("download_resume_point")  # ...then the resume point
        except ThrottleDeferred as exc:
            error = describe_ksef_error(self.env, exc)
        except KsefError as exc:
            error = describe_ksef_error(self.env, exc)
            _logger.warning("KSeF download %s/%s stopped: %s", buffer.nip, sync.subject_type, exc)
        values = {"running": False, "last_error": error or False}
        if not error:
            values.update(
                last_success_at=fields.Datetime.now(),
                last_result=_lt("%(count)s new invoices downloaded.", count=created),
            )
        sync.write(values)
        buffer._commit("download_end")
        return created
