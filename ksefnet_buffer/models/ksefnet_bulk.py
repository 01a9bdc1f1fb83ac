"""Creating many records of one model in one INSERT: the intake's path for documents, their history and XML.

Odoo's ``create`` prepares every record on its own (defaults, cache, inverse fields) before its single INSERT;
for a thousand invoices a second that preparation costs more than the database. :func:`insert_records` keeps
what ``create`` guarantees for plain column values and does the per-batch work once:

- defaults are evaluated once for the batch (fields left out of every row get them, as with ``create``);
- values are converted with each field's own ``convert_to_column_insert`` (JSON, translations, selections);
- ``create_uid``/``write_uid``/``create_date``/``write_date`` are set as ``create`` sets them;
- stored computed and related fields not given are marked to compute (``modified(create=True)``), so they
  are computed by the ORM at the next flush, and other models' stored fields that depend on these records
  are recomputed as after ``create``;
- cached one2many fields pointing at the new records are invalidated.

- the model's Python constraints on the given fields are checked, as after ``create``;
- stored many2many fields may be given as lists of ids: their links are inserted right after the rows.

The rows go to PostgreSQL as one ``COPY ... FROM STDIN`` (text format), their ids reserved from the table's
sequence first: for a hundred document rows that takes about half the time of one multi-row INSERT (its
statement built by psycopg2 value by value, then parsed and planned by the server). A value the COPY writer
does not know is inserted as an INSERT instead.

What it does not do: one2many and non-column fields (refused), overrides of ``create`` (the callers are the
engine's own methods; their extension hooks are ``_create_in_state``, ``_initial_columns`` and
``_on_arrival``). Access is the caller's: it is meant for ``sudo()`` environments of the engine.
"""

import datetime
import io
import json
from decimal import Decimal

from odoo.models import LOG_ACCESS_COLUMNS
from odoo.tools import SQL
from odoo.tools.sql import drop_index, make_index_name
from psycopg2.extensions import Binary
from psycopg2.extras import Json, execute_values

#: up to this many distinct value sets, each shared by GROUP_ROWS rows or more on average, :func:`update_records`
#: writes one UPDATE per set, its rows found by primary key; otherwise one UPDATE joins the rows as arrays
FEW_DISTINCT = 20
GROUP_ROWS = 25


def insert_records(model, vals_list, cached=()):
    """Create the records of ``vals_list`` (dicts of stored field values) of ``model`` in one INSERT.

    Returns the new records, in order. Every row gets the same columns: a field given in some rows only is
    NULL (False) in the others, not its default. ``id`` may be given (see :func:`reserve_ids`). A stored
    many2many is given as a list of ids (the records' links). ``cached``: fields the caller reads next,
    whose values as written (given, default or empty) go into the cache, as create puts every field there:
    reading them back sends no query."""
    if not vals_list:
        return model.browse()
    names = {name for vals in vals_list for name in vals}
    links = sorted(
        n for n in names if (f := model._fields.get(n)) is not None and f.type == "many2many" and f.store
    )
    given = sorted(names.difference(links))
    for name in given:
        field = model._fields.get(name)
        if field is None or not field.store or not field.column_type or name in LOG_ACCESS_COLUMNS:
            raise ValueError(f"insert_records: {model._name}.{name} is not a column it may set")
    defaults = {}
    missing = [
        name
        for name, field in model._fields.items()
        if field.store and field.column_type and not field.compute and name not in given
        and name not in LOG_ACCESS_COLUMNS and name != "id" and name not in links
    ]  # fmt: skip
    if missing:
        defaults = {k: v for k, v in model.default_get(missing).items() if v is not None and v is not False}
    columns = given + sorted(defaults)
    now = model.env.cr.now()
    uid = model.env.uid
    # per column: the field, its value when not set, and the memo of its text values' conversions (for a
    # field whose conversion depends on the value alone: the buffer, the state, the source, the shop...
    # repeat in every row of a batch)
    specs = [
        (field, False if field.type == "boolean" else None, {} if _value_alone(field) else None)
        for field in (model._fields[name] for name in columns)
    ]
    rows = []
    stamps = (uid, now, uid, now)
    for vals in vals_list:
        stored = dict(defaults, **vals) if defaults else vals
        row = []
        for field, blank, memo in specs:
            value = stored.get(field.name)
            if value is None or value is False:
                row.append(blank)
            elif memo is not None and type(value) is str:
                converted = memo.get(value, memo)
                if converted is memo:
                    converted = memo[value] = field.convert_to_column_insert(value, model, stored)
                row.append(converted)
            else:
                row.append(field.convert_to_column_insert(value, model, stored))
        rows.append((*row, *stamps))
    model.flush_model()  # what is pending for this table goes first, as with create
    if "id" in columns:
        ids = [vals["id"] for vals in vals_list]
    else:  # the ids first: COPY returns none
        ids = reserve_ids(model, len(rows))
        columns = ["id", *columns]
        rows = [(row_id, *row) for row_id, row in zip(ids, rows, strict=True)]
    names = ", ".join(f'"{name}"' for name in [*columns, *LOG_ACCESS_COLUMNS])
    cr = model.env.cr._obj
    try:
        data = copy_text(rows)
    except TypeError:  # a value COPY's text format is not written for here: the rows as an INSERT
        table = f'INSERT INTO "{model._table}" ({names}) VALUES %s'  # noqa: S608 - field names
        execute_values(cr, table, rows, page_size=len(rows))
    else:  # COPY: about half the time of the same rows as one INSERT (see this module's doc)
        cr.copy_expert(f'COPY "{model._table}" ({names}) FROM STDIN', data)
    records = model.browse(ids)
    for name in columns:  # a cached one2many of a parent does not list the new records yet
        field = model._fields[name]
        if field.type == "many2one":
            for inverse in model.pool.field_inverses[field]:
                model.env[inverse.model_name].invalidate_model([inverse.name])
    # what depends on the new records is recomputed, as after create; computed fields given are kept
    protected = [model._fields[name] for name in given if model._fields[name].compute]
    with model.env.protecting(protected, records):
        records.modified(list(model._fields), create=True)
        for name, field in model._fields.items():  # stored computed fields not given: computed at flush
            if field.store and field.compute and name not in given:
                model.env.add_to_compute(field, records)
    for name in links:  # the many2many links of the new records: nothing to compare with
        set_links(records, name, {r: vals[name] for r, vals in zip(ids, vals_list, strict=True) if vals.get(name)},
                  replace=False, new=True)  # fmt: skip
    # the model's Python constraints, as after create, reading the values just written from the cache (as
    # create caches them), not by a query of every column of the new rows
    constrained = {name for check in model._constraint_methods for name in check._constrains}
    for name in cached:
        field = model._fields.get(name)
        if field is None or not field.store or not field.column_type:
            raise ValueError(f"insert_records: {model._name}.{name} is not a column it may cache")
    read_next = {name for name in cached if name in given or not model._fields[name].compute}
    _cache_given(
        records, sorted({name for name in given if name in constrained} | read_next), vals_list, defaults
    )
    records._validate_fields(columns + links)
    return records


def _cache_given(records, names, vals_list, defaults=None):
    """Put the values written of fields ``names`` of the new ``records`` (one dict of ``vals_list`` each: a
    field given there, else its default in ``defaults``, else empty) into the cache, as ``create`` does;
    fields whose cached value depends on more than the value (translated, company dependent, x2many, binary)
    are left to be read."""
    defaults = defaults or {}
    for name in names:
        field = records._fields[name]
        if field.translate or field.company_dependent or field.type in ("one2many", "many2many", "binary"):
            continue
        blank = defaults.get(name, False)
        records.env.cache.update(
            records, field, [field.convert_to_cache(vals.get(name, blank), records) for vals in vals_list]
        )


#: the field types whose column value of a text depends on that text alone (not on the record, the other
#: values of its row, the company or the language), unless translated or company-dependent
VALUE_ALONE_TYPES = frozenset({"char", "text", "selection"})


def _value_alone(field):
    """Whether ``field``'s column value of a text is a function of that text alone (see VALUE_ALONE_TYPES)."""
    return field.type in VALUE_ALONE_TYPES and not field.translate and not field.company_dependent


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_value(value):
    """One value in COPY's text format (PostgreSQL's ``COPY ... FROM STDIN``, format text): NULL as ``\\N``,
    booleans as t/f, JSON as its text, bytea as hex; backslashes, tabs and line ends escaped. TypeError for
    a value of another kind (the caller then inserts the rows as an INSERT)."""
    if value is None:
        return "\\N"
    kind = type(value)
    if kind is str:  # most values have nothing to escape: four scans cost an eighth of a translate
        if "\\" in value or "\n" in value or "\t" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    if kind is bool:
        return "t" if value else "f"
    if kind is int or kind is float or kind is Decimal:
        return str(value)
    if kind is Json:
        return _copy_value(value.dumps(value.adapted))
    if kind is datetime.datetime or kind is datetime.date:
        return value.isoformat()
    if kind is Binary:
        return "\\\\x" + bytes(value.adapted).hex()
    raise TypeError(f"no COPY text for {kind.__name__}")


def copy_text(rows):
    """The rows (tuples of column values, as psycopg2 adapts them) as the data of a COPY in text format."""
    return io.StringIO("".join("\t".join(map(_copy_value, row)) + "\n" for row in rows))


def reserve_ids(model, count):
    """``count`` new ids of ``model``'s table, from its own sequence: records that refer to each other (a
    document and its XML attachment) are then inserted once each, with no UPDATE afterwards."""
    return reserve_many([(model, count)])[0]


def reserve_many(requests):
    """:func:`reserve_ids` of several tables in one query: ``requests`` is a list of (model, count), the
    result a list of ids for each (a document, its XML attachment and its first event are stored with one
    round trip to the database for their ids, not three). Each sequence is looked up once (the subquery, kept
    apart by OFFSET 0), not once per id."""
    if not requests:
        return []
    part = (
        "(SELECT array_agg(nextval(s.seq)) FROM (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS seq "
        "OFFSET 0) AS s, generate_series(1, %s))"
    )
    params = [value for model, count in requests for value in (model._table, count)]
    cr = requests[0][0].env.cr
    cr.execute("SELECT " + ", ".join([part] * len(requests)), params)
    return [list(ids or ()) for ids in cr.fetchone()]


def update_records(model, table):
    """Write values of their own to many records of ``model`` at once: ``table`` is a list of (id, {column:
    value}), every row with the same columns. Rows that share one dict share its values: when there are few
    such dicts, each shared by many rows (FEW_DISTINCT, GROUP_ROWS: "sent", a flag), each is written by one
    UPDATE of its rows by primary key. Otherwise one UPDATE takes every row's values as one array per column
    (``FROM unnest(...)``): a statement a set would be parsed, planned and run for two or three rows each (a
    reclassification), twice as slow per row (0.28 against 0.14 ms a row, 3 000 documents in chunks of 500
    with some 220 distinct results each; a list of VALUES was slower still).
    Plain columns only (as :func:`insert_records`);
    ``write_date``/``write_uid`` are set; the cache of the written columns is invalidated and what depends on
    them is marked to recompute, as after ``write``."""
    if not table:
        return model.browse()
    columns = sorted(table[0][1])
    if any(sorted(values) != columns for _id, values in table):
        raise ValueError("update_records: every row needs the same columns")
    for name in columns:
        field = model._fields.get(name)
        if field is None or not field.store or not field.column_type or name in LOG_ACCESS_COLUMNS + ["id"]:
            raise ValueError(f"update_records: {model._name}.{name} is not a column it may set")
    types = {name: model._fields[name].column_type[1] for name in columns}
    records = model.browse([row_id for row_id, _values in table])
    records.flush_recordset(columns)
    cr = model.env.cr
    stamp = f"write_date = now() at time zone 'UTC', write_uid = {int(model.env.uid)}"
    groups = {}
    for row_id, values in table:
        groups.setdefault(id(values), (values, []))[1].append(row_id)
    if len(groups) <= FEW_DISTINCT and len(table) >= GROUP_ROWS * len(groups):
        # its rows found through the primary key (= ANY): no join whose plan depends on what the planner
        # believes of the table's size
        assignments = ", ".join(f'"{c}" = %s::{types[c]}' for c in columns)
        for values, ids in groups.values():
            cr.execute(
                f'UPDATE "{model._table}" SET {assignments}, {stamp} WHERE id = ANY(%s)',  # noqa: S608 - names
                [*(_sql_value(values[c], types[c]) for c in columns), ids],
            )
    else:
        # each shared dict converted once (its JSON dumped once, not by an adapter for every row)
        converted = {}
        for _id, values in table:
            if id(values) not in converted:
                converted[id(values)] = [_array_value(values[c], types[c]) for c in columns]
        arrays = [[row_id for row_id, _values in table]]
        for i in range(len(columns)):
            arrays.append([converted[id(values)][i] for _id, values in table])
        assignments = ", ".join(f'"{c}" = v."{c}"' for c in columns)
        names = ", ".join(f'"{c}"' for c in ["id", *columns])
        unnest = ", ".join(f"%s::{t}[]" for t in ["int4", *(types[c] for c in columns)])
        cr.execute(
            f'UPDATE "{model._table}" AS t SET {assignments}, {stamp} '  # noqa: S608 - field names, an integer
            f"FROM unnest({unnest}) AS v({names}) WHERE t.id = v.id",
            arrays,
        )
    records.invalidate_recordset([*columns, "write_date", "write_uid"])
    records.modified(columns)
    return records


def _sql_value(value, column_type):
    """A value for :func:`update_records`: JSON columns adapted, False as NULL where it is not a boolean."""
    if column_type == "jsonb":
        return Json(value) if value else None
    if value is False and column_type != "bool":
        return None
    return value


def _array_value(value, column_type):
    """A value for an array of :func:`update_records`: as :func:`_sql_value`, JSON as its text (the array's
    cast to jsonb[] reads it)."""
    if column_type == "jsonb":
        return json.dumps(value) if value else None
    return _sql_value(value, column_type)


def set_links(records, name, links, *, replace, new=False):
    """Write many2many ``name`` of many ``records`` at once: ``links`` is {record id: [linked ids]}.

    ``replace``: the links become exactly these (``(6, 0, ids)`` for each record), else they are added
    (``(4, id)``). The current links are read once and only the difference is written (one DELETE, one
    INSERT at most): reclassifying documents that stay where they are writes no links. ``new``: the records
    were just created and have no links yet (nothing to read). The cache of the field is invalidated and what
    depends on it is marked to recompute."""
    field = records._fields[name]
    if field.type != "many2many" or not field.store:
        raise ValueError(f"set_links: {records._name}.{name} is not a stored many2many")
    ids = list(links)
    if not ids:
        return
    cr = records.env.cr
    records = records.browse(ids)
    records.flush_recordset([name])
    relation, own, other = field.relation, field.column1, field.column2
    wanted = dict.fromkeys((rid, linked) for rid, linked_ids in links.items() for linked in linked_ids)
    current = set()
    if not new:
        cr.execute(f'SELECT "{own}", "{other}" FROM "{relation}" WHERE "{own}" = ANY(%s)', [ids])  # noqa: S608
        current = set(cr.fetchall())
    added = [pair for pair in wanted if pair not in current]  # only what changes is written
    removed = [pair for pair in current if pair not in wanted] if replace else []
    if removed:
        cr.execute(
            f'DELETE FROM "{relation}" WHERE "{own}" = ANY(%s) AND ("{own}", "{other}") IN '  # noqa: S608
            "(SELECT unnest(%s::int4[]), unnest(%s::int4[]))",  # the first condition: through the index
            [ids, [p[0] for p in removed], [p[1] for p in removed]],
        )
    if added:
        cr.execute(
            f'INSERT INTO "{relation}" ("{own}", "{other}") '  # noqa: S608 - the field's table and columns
            "SELECT unnest(%s::int4[]), unnest(%s::int4[]) ON CONFLICT DO NOTHING",
            [[p[0] for p in added], [p[1] for p in added]],
        )
    if not added and not removed:
        return
    records.invalidate_recordset([name])
    records.env[field.comodel_name].invalidate_model()  # their inverse many2many, if any, changed too
    records.modified([name])


def drop_outdated_indexes(model, prefix="ksefnet_"):
    """Drop the column indexes Odoo made for ``model``'s fields (of the modules named ``prefix*``) that their
    field no longer asks for: the field is not indexed any more, or its index now leaves NULLs out
    (``btree_not_null``). On an upgrade Odoo keeps such an index (it cannot tell it from one made by hand);
    called from ``init``, which runs before Odoo checks the indexes, so Odoo then creates what each field
    asks for. Every index costs each INSERT and each UPDATE of an indexed column its own entry."""
    fields_by_index = {
        make_index_name(model._table, name): field
        for name, field in model._fields.items()
        if field.store and field.column_type and (field._module or "").startswith(prefix)
    }
    cr = model.env.cr
    cr.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname = ANY(%s)",
        [model._table, list(fields_by_index)],
    )
    for name, definition in cr.fetchall():
        field = fields_by_index[name]
        if not field.index or (field.index == "btree_not_null" and "IS NOT NULL" not in definition):
            drop_index(cr, name, model._table)


def compress_fast(model):
    """Compress the long values of ``model``'s text and JSON columns with lz4 where the server can
    (PostgreSQL 14 or newer built with lz4), not with the default pglz. A document's messages (why it went
    where it went: a line per matched rule, as text and as its template) run to kilobytes, and PostgreSQL
    compresses every such value on each INSERT and UPDATE of its row: lz4 costs less of the server's time for
    the same values (bench_classification.py). Values already stored stay as they are (both are read alike);
    only what is written from now on uses lz4. Called from ``init``; changes the table's description, not
    its rows."""
    cr = model.env.cr
    cr.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
    if not cr.fetchone():
        return  # an older server, or one built without lz4: pglz, as before
    cr.execute(
        """
        SELECT a.attname FROM pg_attribute a
         WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND a.atttypid IN ('text'::regtype, 'jsonb'::regtype) AND a.attcompression <> 'l'
         ORDER BY a.attnum
        """,
        [model._table],
    )
    columns = [row[0] for row in cr.fetchall()]
    if columns:
        cr.execute(
            SQL(
                "ALTER TABLE %s %s",
                SQL.identifier(model._table),
                SQL(", ").join(
                    SQL("ALTER COLUMN %s SET COMPRESSION lz4", SQL.identifier(c)) for c in columns
                ),
            )
        )


#: :func:`keep_statistics` analyses a table once more than this many of its rows changed since its statistics
#: were gathered, and more than it then held. A hundred: a fresh table's first batch of a hundred invoices is
#: analysed at once, before the planner's guesses about an empty table cost each later batch a scan of the
#: buffer (a thousand let the first ~1 200 invoices go by with the reference lookup 10-100 times slower)
STALE_ROWS = 100
#: the first key of the advisory locks of :func:`keep_statistics` (the second: the hash of the table's name)
STATISTICS_LOCK = 0x6B73_6566  # "ksef"


#: see keep_statistics's ``rows``
CHECK_SHARE = 4
#: (database, table): (rows this process stored since it last looked at the statistics, rows they counted)
_unchecked = {}


def keep_statistics(model, rows=None):
    """ANALYZE ``model``'s table when its planner statistics no longer describe it (more rows changed since
    they were gathered than the table then held, and more than STALE_ROWS): PostgreSQL's advice after a bulk
    load. Until autovacuum analyses a table (at most once a minute, or never where it is switched off), the
    planner believes it nearly empty and picks indexes by guesswork: a lookup of a hundred references may
    scan every row of the buffer through another index, and each batch of a first bulk load then costs more
    than the one before. It happens about log2(rows / STALE_ROWS) times over a load (each time the table has
    doubled), costs what one ANALYZE costs (a sample of at most 30 000 rows, whatever the table's size), and
    one session at a time does it (the others go on). Returns whether it analysed.

    ``rows``: how many rows the caller has just stored. Looking at the statistics costs a query, which a
    call storing one invoice would pay every time: a process looks only once it has stored a share
    (1/CHECK_SHARE) of what the statistics counted at its last look, or STALE_ROWS // CHECK_SHARE rows, since
    then. The table is then analysed at most that share later than it would be otherwise. Without ``rows``
    it always looks."""
    cr = model.env.cr
    key = (cr.dbname, model._table)
    if rows is not None:
        stored, counted = _unchecked.get(key, (0, 0))
        stored += rows
        if stored < max(STALE_ROWS, counted) // CHECK_SHARE:
            _unchecked[key] = (stored, counted)
            return False
    cr.execute(
        # rows changed by committed transactions since the last ANALYZE, inserted by this one so far, and
        # this transaction's id (it has one: it inserted)
        """
        SELECT pg_stat_get_mod_since_analyze(c.oid), pg_stat_get_xact_tuples_inserted(c.oid), c.reltuples,
               txid_current_if_assigned()
          FROM pg_class c WHERE c.oid = %s::regclass
        """,
        [model._table],
    )
    committed, inserted, counted, transaction = cr.fetchone()
    _unchecked[key] = (0, max(counted, 0))  # reltuples is -1 for a table never analysed
    # this transaction's rows inserted before its own last ANALYZE are counted already (in reltuples): only
    # the later ones are new to the statistics. Without this, a transaction that stores documents one by
    # one would analyse the table again after every one once it passed STALE_ROWS.
    analysed = cr.cache.setdefault("ksefnet_analysed", {})
    seen = analysed.get(model._table)
    before = seen[1] if seen and seen[0] == transaction else 0
    if committed + inserted - before <= max(STALE_ROWS, counted):
        return False
    cr.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", [STATISTICS_LOCK, model._table])
    if not cr.fetchone()[0]:
        return False
    cr.execute(f'ANALYZE "{model._table}"')  # noqa: S608 - the model's own table name
    analysed[model._table] = (transaction, inserted)
    return True
