from . import ksefnet_document, ksefnet_hipermarket_api, res_users
