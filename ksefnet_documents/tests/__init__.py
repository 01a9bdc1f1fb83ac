from . import test_classification, test_install, test_permissions
