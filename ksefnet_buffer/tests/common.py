"""Test base: a real local KSeF simulator on loopback, and a buffer pointed at it."""

import base64
import itertools
import time

import requests
from odoo.tests import TransactionCase, new_test_user

from ksefnet_core.simulator.app import Simulator, SimulatorConfig
from ksefnet_core.simulator.server import SimulatorServer
from ksefnet_core.testing import sample_invoice

NIP = "5265877635"
_numbers = itertools.count(1)


class KsefSimulatorCase(TransactionCase):
    """Each test class gets its own simulator (real HTTP on 127.0.0.1) and a buffer with a KSeF token."""

    nip = NIP
    #: True: every test plays against a new, empty simulator (tests that count what KSeF holds)
    fresh_simulator_per_test = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._start_simulator()
        cls.buffer = cls.env["ksefnet.buffer"].create(
            {"name": "Test buffer", "nip": cls.nip, "environment": "simulator", "api_url": cls.sim.api_base}
        )
        cls.set_token(cls.buffer, cls.mint_token(cls.nip))

    @classmethod
    def _start_simulator(cls):
        # OpenAPI conformance on: every request the buffer sends and every answer it gets is checked against
        # KSeF's official open-api.json; a mismatch fails the test.
        cls.sim_app = Simulator(SimulatorConfig(processing_delay=0.0, conformance=True))
        cls.sim = SimulatorServer(cls.sim_app).start()
        cls.addClassCleanup(cls.sim.stop)

    def setUp(self):
        super().setUp()
        # The engines commit after every step; a test's transaction cannot be committed, so the steps are
        # recorded in order instead (self.commits), where a test can see them. Tests of concurrency and of
        # the scheduled actions commit for real (test_engine_transactions.py).
        self.commits = []
        Buffer = type(self.env["ksefnet.buffer"])

        def record_commit(model, step):
            model.env.flush_all()
            self.commits.append(step)

        self.patch(Buffer, "_commit", record_commit)
        self.patch(Buffer, "_rollback", lambda model: self.commits.append("rollback"))
        # Clients are cached per buffer (with their throttle); each test starts without one.
        self.buffer._forget_clients()
        self.addCleanup(self.buffer._forget_clients)
        self.addCleanup(self._assert_conformance)
        if self.fresh_simulator_per_test:
            type(self)._start_simulator()
            self.buffer.api_url = self.sim.api_base
            self.set_token(self.buffer, self.mint_token(self.nip))

    def _assert_conformance(self):
        violations = self.sim_app.conformance.violations
        found = list(violations)
        violations.clear()
        self.assertFalse(found, "OpenAPI conformance violations:\n" + "\n".join(map(str, found)))

    @classmethod
    def mint_token(cls, nip, permissions=None):
        body = {"nip": nip}
        if permissions:
            body["permissions"] = permissions
        resp = requests.post(f"{cls.sim.base_url}/_simulator/tokens", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()["token"]

    @classmethod
    def set_token(cls, buffer, token, verify=True):
        wizard = cls.env["ksefnet.credentials.wizard"].create(
            {"buffer_id": buffer.id, "method": "token", "ksef_token": token, "verify": verify}
        )
        wizard.action_save()

    @classmethod
    def set_certificate(
        cls, buffer, pkcs12, password, subject_identifier_type="certificateSubject", verify=True
    ):
        wizard = cls.env["ksefnet.credentials.wizard"].create(
            {
                "buffer_id": buffer.id,
                "method": "certificate",
                "certificate_file": base64.b64encode(pkcs12),
                "certificate_password": password,
                "subject_identifier_type": subject_identifier_type,
                "verify": verify,
            }
        )
        wizard.action_save()

    def other_company_admin(self, login):
        """A KSeF administrator (who sees every document of their companies) of another company only."""
        other_company = self.env["res.company"].create({"name": "Sklep Gdańsk Sp. z o.o."})
        return new_test_user(
            self.env,
            login=login,
            groups="ksefnet_buffer.group_ksef_admin",
            company_id=other_company.id,
            company_ids=[(6, 0, [other_company.id])],
        )

    def invoice(self, number=None, **kw):
        kw.setdefault("seller_nip", self.nip)
        return sample_invoice(number=number or f"FV/{time.time_ns()}/{next(_numbers)}", **kw)

    def submit(self, count=1, **kw):
        Document = self.env["ksefnet.document"]
        return Document.browse(
            [Document._create_submitted(self.buffer, self.invoice(**kw)).id for _ in range(count)]
        )

    def send_round(self):
        return self.env["ksefnet.sender"]._run_buffer(self.buffer)

    def raise_rate_limits(self, factor=100):
        """Raise this context's KSeF rate limits, as KSeF TEST allows (POST /testdata/rate-limits).

        The buffer reads the effective limits (GET /rate-limits) when it authenticates, so it paces itself by
        the new values from its next client on.
        """
        client = self.buffer._ksef_client()
        current = client.rate_limits()
        client.set_test_rate_limits(
            {
                group: {key: int(value) * factor for key, value in limits.items()}
                for group, limits in current.items()
                if isinstance(limits, dict)
            }
        )
        self.buffer._forget_clients()

    def add_fault(self, **rule):
        resp = requests.post(f"{self.sim.base_url}/_simulator/faults", json=rule, timeout=30)
        resp.raise_for_status()
        self.addCleanup(requests.delete, f"{self.sim.base_url}/_simulator/faults", timeout=30)

    def make_upos_due(self, docs):
        docs.sudo().write({"upo_next_try_at": "2000-01-01 00:00:00"})

    def make_due(self, docs):
        """Pretend the retry delay has passed."""
        docs.sudo().write({"next_retry_at": "2000-01-01 00:00:00"})


def assert_translation_complete(case, module):
    """Every term Odoo exports for ``module`` today has a Polish translation in its ``i18n/pl.po``."""
    from pathlib import Path

    import polib
    from odoo.modules.module import get_module_path
    from odoo.tools.translate import TranslationModuleReader

    po = polib.pofile(str(Path(get_module_path(module)) / "i18n" / "pl.po"))
    case.assertFalse(po.untranslated_entries() or po.fuzzy_entries(), f"{module}: untranslated entries")
    exported = {
        source for mod, _type, _name, _res_id, source, _value, _comments in TranslationModuleReader(
            case.env.cr, modules=[module]
        ) if mod == module and source
    }  # fmt: skip
    missing = exported - {entry.msgid for entry in po}
    case.assertFalse(
        missing, f"{module}: terms without a Polish translation (export the .pot again): {missing}"
    )
