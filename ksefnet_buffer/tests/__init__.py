from . import (
    test_access,
    test_availability,
    test_buffer,
    test_bulk,
    test_download,
    test_engine_transactions,
    test_i18n,
    test_messages_i18n,
    test_offline_deadlines,
    test_readable,
    test_security,
    test_sending,
)
