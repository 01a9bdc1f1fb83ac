from . import test_api, test_i18n
