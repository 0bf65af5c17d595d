"""The front door's cost per request: verifying a token, and the rate limiter.

Measured in one process, on one core, with nothing else of the platform running:

* **embedded**: :meth:`shared.auth.verify.Verifier.verify` on a token of the embedded issuer
  (EdDSA, its key ring read once): seen for the first time (parse, signature, claims,
  principal), and seen before (the verifier remembers a verified token until it expires);
* **oidc ES256 / RS256**: the same for a provider's token, its JWKS already cached (the
  fetch is not timed: it happens once per ``PETITION_OIDC_JWKS_MAX_AGE_SECONDS``);
* **bucket**: :meth:`services.intake.api.ratelimit.Buckets.take` alone;
* **limiter**: the middleware around an app that does nothing, for a request with a token
  it has verified before (the usual case: a look-up and a bucket), and for one without a
  token (keyed by address).

Each figure is the median of ``BENCH_AUTH_ROUNDS`` (default 5) rounds of
``BENCH_AUTH_N`` (default 5,000) calls. A benchmark reports; it asserts nothing.

Reproduce: ``.venv/bin/python -m bench auth``
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bench.machine import describe


def _median_us(call: Callable[[], Awaitable[object]], n: int, rounds: int) -> float:
    async def run() -> list[float]:
        for _ in range(min(n, 200)):  # warm-up
            await call()
        figures = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(n):
                await call()
            figures.append((time.perf_counter() - started) / n * 1e6)
        return figures

    return statistics.median(asyncio.run(run()))


def _verifying(verifier: Any, token: str) -> Callable[[], Awaitable[object]]:
    return lambda: verifier.verify(token)


def _oidc_token_and_verifier(alg: str, remember: int) -> tuple[str, Any]:
    from shared.auth.oidc import JwksCache, OidcVerifier
    from shared.auth.settings import AuthSettings
    from shared.auth.verify import Verifier

    private: Any = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = (ECAlgorithm if alg == "ES256" else RSAAlgorithm).to_jwk(private.public_key(), as_dict=True)
    document = {"keys": [{**jwk, "kid": "k1", "alg": alg, "use": "sig"}]}

    async def fetch() -> dict[str, Any]:
        return document

    settings = AuthSettings(oidc_issuer="https://sso.bench", oidc_jwks_url="http://unused", oidc_audience="bench")
    cache = JwksCache(fetch, max_age=3600, min_interval=10, max_stale=3600)
    now = int(time.time())
    token = jwt.encode({"iss": "https://sso.bench", "aud": "bench", "sub": "zhang.wei", "iat": now, "exp": now + 3600,
                        "role": "department", "departments": ["A3-HOUSING"]}, private, algorithm=alg,
                       headers={"kid": "k1"})
    return token, Verifier(embedded=None, oidc=OidcVerifier(settings, cache), remember=remember)


def _scope_checks(n: int, rounds: int) -> dict[str, float]:
    """The service layer's checks of a request (pure code, on the loaded reference data), and
    masking a petition's text (each submission and action note pays it once)."""
    from services.intake.domain import access
    from services.intake.domain.masking import mask_personal_numbers
    from services.intake.reference import load_reference
    from shared.identity import Principal, Role
    from shared.settings import Settings

    reference = load_reference(Settings())
    facts = access.PetitionFacts("p-1", "A3-HOUSING", frozenset({"A3-HOUSING", "A3-URBAN"}), "430103",
                                 ("A5-GOV",), "op-1")
    clerk = Principal("d-1", Role.DEPARTMENT, frozenset({"A3-HOUSING"}))
    supervisor = Principal("s-1", Role.SUPERVISOR, area="430100")
    text = ("我是A市A3区某小区的拆迁户，安置房承诺两年前交房，至今仍未建成，开发商一再拖延。" * 5
            + "我的电话13912345678，身份证430103199001011234，座机0731-84561234。")

    async def department() -> None:
        access.check_action(clerk, "accept")
        access.check_acting_unit(clerk, "A3-HOUSING")
        access.check_visible(clerk, facts)

    async def area() -> None:
        scope = reference.scope_of(supervisor.area or "")
        access.check_action(supervisor, "approve_extension")
        access.check_acting_unit(supervisor, "A3-GOV", scope)
        access.check_visible(supervisor, facts, scope)

    async def masking() -> None:
        mask_personal_numbers(text)

    return {
        "scope checks, a department's action": _median_us(department, n, rounds),
        "scope checks, a supervisor's action (area subtree)": _median_us(area, n, rounds),
        f"masking personal numbers, a {len(text)}-character petition": _median_us(masking, n, rounds),
    }


def main(argv: list[str]) -> int:
    from services.intake.api.ratelimit import Buckets, RateLimit
    from shared.auth.issuer import issue_token
    from shared.auth.settings import AuthSettings
    from shared.auth.verify import Verifier, build_verifier
    from shared.identity import Principal, Role

    n = int(os.environ.get("BENCH_AUTH_N", "5000"))
    rounds = int(os.environ.get("BENCH_AUTH_ROUNDS", "5"))
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = AuthSettings()
        verifier = build_verifier(settings, folder)
        verifier.start()
        token = issue_token(settings.key_folder(folder), Principal("d-1", Role.DEPARTMENT, frozenset({"A3-HOUSING"})),
                            issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_seconds=3600,
                            max_ttl_seconds=settings.jwt_max_ttl_seconds, now=int(time.time()))
        first_sight = Verifier(embedded=verifier.embedded, oidc=None, remember=0)
        figures["verify, embedded issuer (EdDSA), first sight"] = _median_us(_verifying(first_sight, token), n, rounds)
        figures["verify, embedded issuer, seen before"] = _median_us(_verifying(verifier, token), n, rounds)
        for alg in ("ES256", "RS256"):
            oidc_token, oidc = _oidc_token_and_verifier(alg, remember=0)
            figures[f"verify, OIDC {alg} (JWKS cached), first sight"] = _median_us(_verifying(oidc, oidc_token), n,
                                                                                   rounds)
        oidc_token, oidc = _oidc_token_and_verifier("RS256", remember=10_000)
        figures["verify, OIDC, seen before"] = _median_us(_verifying(oidc, oidc_token), n, rounds)

        buckets = Buckets(1e9, 10**9, 10_000)  # never refuses: the cost of the passing path
        counter = iter(range(10**9))

        async def take() -> float:
            return buckets.take(f"addr:10.0.{next(counter) % 250}.1")

        figures["bucket take (250 callers)"] = _median_us(take, n, rounds)

        async def nothing(scope: Any, receive: Any, send: Any) -> None:
            return None

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            return None

        limiter = RateLimit(nothing, buckets=buckets, verifier=verifier)

        def request(headers: list[tuple[bytes, bytes]]) -> Callable[[], Awaitable[None]]:
            scope = {"type": "http", "path": "/v1/petitions", "headers": headers, "client": ("10.0.0.1", 1)}
            return lambda: limiter(dict(scope), receive, send)

        figures["limiter, token seen before"] = _median_us(request([(b"authorization", f"Bearer {token}".encode())]),
                                                           n, rounds)
        figures["limiter, no token (by address)"] = _median_us(request([]), n, rounds)
        figures.update(_scope_checks(n, rounds))

    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.1f} at the end (other work shares the cores)")
    print(f"per call, median of {rounds} rounds of {n:,} calls, one process:")
    width = max(map(len, figures))
    for name, us in figures.items():
        print(f"  {name:<{width}}  {us:8.1f} µs")
    print("per request: a token seen for the first time pays one full verification (in the limiter; the route"
          " reuses its answer); a token seen before pays the limiter's look-up and the verifier's")
    print("reproduce: .venv/bin/python -m bench auth")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
