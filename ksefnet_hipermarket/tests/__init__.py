from . import test_access_matrix, test_api, test_change_feed, test_hostile_input, test_i18n, test_offline
