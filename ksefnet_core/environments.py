"""KSeF environments (TEST, DEMO, PRODUCTION) and custom base URLs such as the local simulator."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Environment:
    """Where a client talks to: the API base URL (ending in ``/v2``) and the host used in QR links."""

    name: str
    api_base: str
    qr_base: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.api_base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"KSeF API base URL must be an http(s) URL, got {self.api_base!r}")
        object.__setattr__(self, "api_base", self.api_base.rstrip("/"))
        object.__setattr__(self, "qr_base", self.qr_base.rstrip("/"))

    @property
    def qr_host(self) -> str:
        """QR verification host without the scheme, as used in the signed KOD II string."""
        return urlsplit(self.qr_base).netloc + urlsplit(self.qr_base).path

    @classmethod
    def custom(cls, api_base: str, qr_base: str | None = None, name: str = "CUSTOM") -> Environment:
        """An environment at any base URL (the local simulator, a proxy). QR links default to the TEST host."""
        return cls(name=name, api_base=api_base, qr_base=qr_base or TEST.qr_base)


TEST = Environment("TEST", "https://api-test.ksef.mf.gov.pl/v2", "https://qr-test.ksef.mf.gov.pl")
DEMO = Environment("DEMO", "https://api-demo.ksef.mf.gov.pl/v2", "https://qr-demo.ksef.mf.gov.pl")
PRODUCTION = Environment("PRODUCTION", "https://api.ksef.mf.gov.pl/v2", "https://qr.ksef.mf.gov.pl")

BY_NAME = {env.name: env for env in (TEST, DEMO, PRODUCTION)}


def get(name_or_url: str) -> Environment:
    """Return a named environment (``TEST``/``DEMO``/``PRODUCTION``) or a custom one for a URL."""
    key = name_or_url.strip()
    if key.upper() in BY_NAME:
        return BY_NAME[key.upper()]
    return Environment.custom(key)
