"""The token settings (``PETITION_JWT_*``, ``PETITION_OIDC_*``), built when a process starts.

Kept beside the token code rather than in :class:`shared.settings.Settings`: only intake and
``petitionctl`` read them. Durations are seconds.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["AuthSettings"]


class AuthSettings(BaseSettings):
    """The embedded issuer, the verifier and a city's OIDC provider, one variable each."""

    model_config = SettingsConfigDict(env_prefix="PETITION_", extra="ignore", frozen=True)

    # -- the embedded issuer (petitionctl token issue)
    #: off: only the OIDC provider's tokens are accepted (the JWKS route then lists no key)
    jwt_embedded: bool = True
    jwt_issuer: str = "petition-platform"
    jwt_audience: str = "petition-api"
    jwt_default_ttl_seconds: int = Field(default=8 * 3600, gt=0)
    #: the longest lifetime a token may have; it also bounds how long a retired key is kept
    jwt_max_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    #: the signing keys; default ``<PETITION_RUN_DIR>/secrets/jwt`` (see :meth:`key_folder`)
    jwt_keys_dir: Path | None = None
    #: clock skew tolerated on exp, nbf and iat, for every issuer
    jwt_leeway_seconds: float = Field(default=5.0, ge=0, le=300)

    # -- a city's own OIDC provider (off unless an issuer is set)
    oidc_issuer: str = ""
    oidc_jwks_url: str = ""
    oidc_audience: str = ""
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    #: which claims carry the staff id, the role, the departments and the area (a dotted
    #: path reaches into an object: ``realm_access.roles``)
    oidc_subject_claim: str = "sub"
    oidc_role_claim: str = "role"
    oidc_departments_claim: str = "departments"
    oidc_area_claim: str = "area"
    #: one fetch of the provider's JWKS may take this long
    oidc_jwks_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    #: fetched again when older than this (a key the provider removed stops verifying then)
    oidc_jwks_max_age_seconds: float = Field(default=300.0, gt=0)
    #: at most one fetch in this interval, however many tokens name an unknown key
    oidc_jwks_min_interval_seconds: float = Field(default=10.0, ge=0)
    #: a JWKS that cannot be fetched again is used this long after its last fetch, then 503
    oidc_jwks_max_stale_seconds: float = Field(default=3600.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> AuthSettings:
        if self.jwt_default_ttl_seconds > self.jwt_max_ttl_seconds:
            raise ValueError("PETITION_JWT_DEFAULT_TTL_SECONDS exceeds PETITION_JWT_MAX_TTL_SECONDS")
        if self.oidc_issuer and not (self.oidc_jwks_url and self.oidc_audience):
            raise ValueError("PETITION_OIDC_ISSUER needs PETITION_OIDC_JWKS_URL and PETITION_OIDC_AUDIENCE")
        if not self.jwt_embedded and not self.oidc_issuer:
            raise ValueError("PETITION_JWT_EMBEDDED=false needs an OIDC provider (PETITION_OIDC_ISSUER)")
        if self.oidc_issuer and self.oidc_issuer == self.jwt_issuer and self.jwt_embedded:
            raise ValueError("the OIDC issuer and the embedded issuer must differ")
        return self

    def key_folder(self, run_dir: Path) -> Path:
        """Where the embedded issuer's keys are: the setting, else the run folder's secrets."""
        return self.jwt_keys_dir or run_dir / "secrets" / "jwt"
