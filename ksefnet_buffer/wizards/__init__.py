from . import ksefnet_credentials_wizard
