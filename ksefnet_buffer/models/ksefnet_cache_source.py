from odoo import api, models


class KsefnetCacheSource(models.AbstractModel):
    """Records whose values Odoo keeps in the registry's cache (record rules, the compiled classification
    rules, the HiperMarket API's lookups): creating or deleting one clears that cache, and so does writing
    one of ``_cache_fields`` (any field when None). Odoo tells the other workers at commit, and a rolled back
    change clears it again."""

    _name = "ksefnet.cache.source"
    _description = "Source of cached values"
    #: the fields whose change clears the cache (None: every field)
    _cache_fields = None

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env.registry.clear_cache()
        return records

    def write(self, vals):
        result = super().write(vals)
        if self._cache_fields is None or set(self._cache_fields) & set(vals):
            self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result
