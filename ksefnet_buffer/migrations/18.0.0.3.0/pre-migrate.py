"""18.0.0.3.0: messages are stored as template + parameters and shown in the reader's language.

Each text column becomes ``<field>_source`` (the text as written, shown as it is for rows written before);
``<field>`` is now computed in the reader's language."""

COLUMNS = [
    ("ksefnet_document", "last_message"),
    ("ksefnet_document", "upo_last_error"),
    ("ksefnet_document", "offline_problem"),
    ("ksefnet_document_event", "message"),
    ("ksefnet_buffer", "engine_note"),
    ("ksefnet_buffer", "last_connection_result"),
    ("ksefnet_buffer", "latarnia_problem"),
    ("ksefnet_buffer_sync", "last_error"),
    ("ksefnet_buffer_sync", "last_result"),
    ("ksefnet_buffer_sync", "progress_note"),
]


def migrate(cr, version):
    for table, name in COLUMNS if version else ():
        cr.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name IN %s",
            [table, (name, f"{name}_source")],
        )
        if {row[0] for row in cr.fetchall()} == {name}:  # the old column only: rename it (once)
            cr.execute(f'ALTER TABLE "{table}" RENAME COLUMN "{name}" TO "{name}_source"')
