from . import (
    ir_module,
    ksefnet_buffer,
    ksefnet_catalog,
    ksefnet_classification_note,
    ksefnet_classification_rule,
    ksefnet_document,
    ksefnet_invoice_kind,
    ksefnet_permission,
    ksefnet_shop,
    ksefnet_tag,
    res_users,
)
