"""18.0.0.4.0: classification notes and validity reasons are stored as template + parameters and shown in the
reader's language: each text column becomes ``<field>_source`` (the text as written, shown as it is for rows
written before); ``<field>`` is now computed in the reader's language."""


def migrate(cr, version):
    for name in ("classification_note", "validity_reasons") if version else ():
        cr.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'ksefnet_document' "
            "AND column_name IN %s",
            [(name, f"{name}_source")],
        )
        if {row[0] for row in cr.fetchall()} == {name}:
            cr.execute(f'ALTER TABLE ksefnet_document RENAME COLUMN "{name}" TO "{name}_source"')
