from . import ksefnet_buffer, ksefnet_document, ksefnet_hipermarket_api, res_users
