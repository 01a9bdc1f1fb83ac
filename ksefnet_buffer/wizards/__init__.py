from . import ksefnet_correction_wizard, ksefnet_credentials_wizard
