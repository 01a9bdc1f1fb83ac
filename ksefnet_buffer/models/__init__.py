from . import ksefnet_message  # noqa: I001 - first: the other models inherit its mixin
from . import (
    ksefnet_cache_source,
    ksefnet_buffer,
    ksefnet_buffer_sync,
    ksefnet_document,
    ksefnet_document_event,
    ksefnet_downloader,
    ksefnet_sender,
    ksefnet_session,
    ksefnet_watch,
    res_users,
)
