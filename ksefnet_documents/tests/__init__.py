from . import (
    test_classification,
    test_i18n,
    test_messages_i18n,
    test_permissions,
    test_tours,
    test_user_screens,
)
