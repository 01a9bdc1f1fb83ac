"""Messages stored as a translatable template with its parameters, shown in the reader's language.

The engines write their messages (a document's history and failure reasons, the buffer's sending status,
download errors, classification notes...) while running as the scheduled action or as an integration user,
whose language is not the reader's. So a message is stored as what it is made of, not as finished text:

* ``<field>_source`` (stored text): the message in English as it was written, for SQL, searches and the log.
  Rows written before templates existed hold their text as it was written and are shown as stored;
* ``<field>_template`` (stored JSON): the message's parts: a template (its msgid, the module whose .po
  translates it, and its parameters), a selection's label, or parts joined by a separator;
* ``<field>`` (computed, not stored): the message rendered in the reader's language. Views, exports and RPC
  reads use this one, so a Polish user reads Polish whoever wrote the message.

Writers pass message parts: ``_lt("... %(x)s ...", x=value)`` (Odoo's lazy translation, which the translation
export picks up), :class:`Label` for a selection value, :class:`Join` for lines; a parameter may itself be a
part, rendered in the same language. Plain strings are literals (names, numbers, KSeF's own descriptions, which
are Polish) and are shown as they are.
"""

from datetime import date, datetime
from decimal import Decimal

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools.translate import LazyGettext, code_translations


class Label:
    """The label of a selection value (``model``'s ``field``), shown in the reader's language."""

    __slots__ = ("field", "model", "value")

    def __init__(self, model, field, value):
        self.model, self.field, self.value = model, field, value

    def __repr__(self):  # by content: equal messages group together (e.g. classification results)
        return f"Label({self.model!r}, {self.field!r}, {self.value!r})"


class Join:
    """Parts shown one after the other with ``sep`` between them (lines of a note, items of a list)."""

    __slots__ = ("parts", "sep")

    def __init__(self, sep, parts):
        self.sep, self.parts = sep, list(parts)

    def __repr__(self):
        return f"Join({self.sep!r}, {self.parts!r})"


def dump(part):
    """The JSON form of a message part (a part already in JSON form is returned as it is)."""
    if part is None or isinstance(part, bool | int | float | str):
        return part
    if isinstance(part, LazyGettext):
        data = {"t": part._source, "m": part._module}
        args = part._args
        if args:
            data["a"] = (
                {key: dump(value) for key, value in args.items()}
                if isinstance(args, dict)
                else [dump(value) for value in args]
            )
        return data
    if isinstance(part, Label):
        return {"l": [part.model, part.field, part.value]}
    if isinstance(part, Join):
        return {"j": part.sep, "p": [dump(p) for p in part.parts]}
    if isinstance(part, dict) and {"t", "l", "j"} & part.keys():
        return part
    if isinstance(part, datetime):
        return fields.Datetime.to_string(part)
    if isinstance(part, date):
        return part.isoformat()
    if isinstance(part, Decimal):
        return str(part)
    if isinstance(part, list | tuple):
        return dump(Join(", ", part))
    return str(part)


def reader_lang(env):
    """The language a reader reads in: the context's (the web client sends the user's), else the user's own
    (an RPC call that sends no context), as Odoo's ``_()`` does."""
    return env.lang or env.user.lang or "en_US"


def render(env, part, lang=None):
    """``part`` (a message part or its JSON form) as text in ``lang`` (default: the reader's language)."""
    return _text(env, dump(part), lang or reader_lang(env))


def english(env, part):
    return render(env, part, "en_US")


def _text(env, data, lang):
    value = _value(env, data, lang)
    return "" if value is None or value is False else str(value)


def _value(env, data, lang):
    """A parameter's value: a part rendered as text; a plain value (a number) kept for %-formatting."""
    if not isinstance(data, dict):
        return data
    if "t" in data:
        source = data["t"]
        text = source
        if lang != "en_US":
            text = code_translations.get_python_translations(data.get("m") or "base", lang).get(
                source, source
            )
        args = data.get("a")
        if not args:
            return text
        values = (
            {key: _value(env, value, lang) for key, value in args.items()}
            if isinstance(args, dict)
            else tuple(_value(env, value, lang) for value in args)
        )
        for template in (text, source):  # a broken translation falls back to the English template
            try:
                return template % values
            except (TypeError, ValueError, KeyError):
                continue
        return source
    if "l" in data:
        model, field, value = data["l"]
        if model in env and field in env[model]._fields:
            if env.lang != lang:
                env = env(context=dict(env.context, lang=lang))
            labels = dict(env[model]._fields[field]._description_selection(env))
            return labels.get(value, value)
        return value
    if "j" in data:
        return str(data["j"]).join(_text(env, part, lang) for part in data.get("p") or ())
    return str(data)


def prepare(env, part):
    """(JSON form, English text) of a message part, for a part that goes into many messages (a rule's line in
    classification notes): made once, then joined by :func:`joined_columns`."""
    data = dump(part)
    return data, _text(env, data, "en_US")


def joined_columns(name, sep, prepared):
    """The stored columns of message field ``name`` holding ``Join(sep, parts)``, from the parts' prepared
    forms (:func:`prepare`): what :meth:`KsefnetMessageMixin._message_columns` stores for that Join."""
    return {
        f"{name}_source": sep.join(text for _data, text in prepared),
        f"{name}_template": {"j": sep, "p": [data for data, _text in prepared]},
    }


def user_error(env, part, cls=UserError):
    """A UserError (or ``cls``) saying ``part`` in ``env``'s language that keeps the part itself, so that
    where the engines catch and store it, it reads in each reader's language."""
    exc = cls(render(env, part))
    exc.ksefnet_message = part
    return exc


def message_field(name, string=None, field_type=fields.Text, **kw):
    """The field ``name`` shown in the reader's language, computed from ``<name>_source`` and
    ``<name>_template`` (declare both on the model, see :class:`KsefnetMessageMixin`); searching it searches
    the stored English text."""

    def search(records, operator, value):
        return [(f"{name}_source", operator, value)]

    search.__name__ = f"_search_{name}"
    return field_type(string, compute="_compute_ksefnet_messages", search=search, readonly=True, **kw)


def source_field(string=None, field_type=fields.Text, **kw):
    return field_type(string, readonly=True, copy=False, **kw)


def template_field(string=None, **kw):
    # read together when a message is shown, not with every other field of the record: a program that reads
    # documents by the thousand (classification, the engines) does not decode their messages' JSON
    kw.setdefault("prefetch", "ksefnet_message_templates")
    return fields.Json(string, readonly=True, copy=False, **kw)


class KsefnetMessageMixin(models.AbstractModel):
    """Message fields stored as template + parameters and shown in the reader's language.

    For each message field ``name`` a model declares ``name = message_field(name, ...)``,
    ``name_source = source_field(...)`` and ``name_template = template_field()``. Writing ``name`` (create,
    write) with a message part or a plain text stores both columns."""

    _name = "ksefnet.message.mixin"
    _description = "Messages shown in the reader's language"

    def _ksefnet_messages(self):
        """The names of this model's message fields."""
        return [name for name, f in self._fields.items() if f.compute == "_compute_ksefnet_messages"]

    @api.depends(lambda self: [f"{n}_{s}" for n in self._ksefnet_messages() for s in ("source", "template")])
    @api.depends_context("lang", "uid")
    def _compute_ksefnet_messages(self):
        lang = reader_lang(self.env)
        names = self._ksefnet_messages()
        for record in self:
            for name in names:
                template = record[f"{name}_template"]
                record[name] = render(self.env, template, lang) if template else record[f"{name}_source"]

    @api.model
    def _message_columns(self, name, part):
        """The stored columns of message field ``name`` holding ``part`` (a message part, a text or nothing)."""
        if part is None or part is False or (isinstance(part, str) and not part):
            return {f"{name}_source": False, f"{name}_template": False}
        data = dump(part)
        if isinstance(data, str):
            return {f"{name}_source": data, f"{name}_template": False}
        return {f"{name}_source": english(self.env, data), f"{name}_template": data}

    @api.model
    def _message_vals(self, vals):
        names = [name for name in self._ksefnet_messages() if name in vals]
        if not names:
            return vals
        vals = dict(vals)
        for name in names:
            vals.update(self._message_columns(name, vals.pop(name)))
        return vals

    @api.model
    def _message_vals_many(self, vals_list):
        """:meth:`_message_vals` of many rows at once: a part that several rows hold (the same object: the
        validity reasons of documents classified alike) is converted once."""
        names = self._ksefnet_messages()
        done = {}  # (field, id of the part): its columns; the parts stay alive in vals_list meanwhile
        result = []
        for vals in vals_list:
            present = [name for name in names if name in vals]
            if present:
                vals = dict(vals)
                for name in present:
                    part = vals.pop(name)
                    key = (name, id(part))
                    if key not in done:
                        done[key] = self._message_columns(name, part)
                    vals.update(done[key])
            result.append(vals)
        return result

    @api.model_create_multi
    def create(self, vals_list):
        return super().create([self._message_vals(vals) for vals in vals_list])

    def write(self, vals):
        return super().write(self._message_vals(vals))
