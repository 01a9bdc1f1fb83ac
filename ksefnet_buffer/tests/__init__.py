from . import test_buffer, test_download, test_security, test_sending
