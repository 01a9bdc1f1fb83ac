"""18.0.0.2.0: the UPO became a step of its own (``upo_state``). Documents sent before kept their UPO with the
sending step: mark those with a UPO as stored, and sent sales documents without one as awaiting it."""


def migrate(cr, version):
    if not version:
        return
    cr.execute(
        "UPDATE ksefnet_document SET upo_state = 'stored' WHERE upo_state IS NULL AND upo_attachment_id IS NOT NULL"
    )
    cr.execute(
        "UPDATE ksefnet_document SET upo_state = 'pending' "
        "WHERE upo_state IS NULL AND state = 'sent' AND direction = 'sales' AND ksef_session_ref IS NOT NULL"
    )
