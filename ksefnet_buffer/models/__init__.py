from . import (
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
