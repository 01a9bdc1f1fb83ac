from . import test_api, test_change_feed, test_i18n
