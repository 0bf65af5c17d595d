"""Proving who calls: tokens of the platform's own issuer and of a city's OIDC provider.

* :mod:`shared.auth.claims` — what a token says, both ways, and the refusal codes (pure);
* :mod:`shared.auth.keys` — the embedded issuer's key ring on disk, and its rotation;
* :mod:`shared.auth.issuer` — signing a token (``petitionctl token issue``);
* :mod:`shared.auth.jws` — reading a token, and PyJWT's refusals as the platform's codes;
* :mod:`shared.auth.embedded` — verifying the embedded issuer's tokens against the key ring;
* :mod:`shared.auth.oidc` — an OIDC provider's tokens, its JWKS cached, refreshed on key rollover;
* :mod:`shared.auth.verify` — a token in, a :class:`shared.identity.Principal` out, whichever issuer;
* :mod:`shared.auth.settings` — ``PETITION_JWT_*`` and ``PETITION_OIDC_*``.

Who may do what with a principal is the service layer's business, not this package's.
"""
