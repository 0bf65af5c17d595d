"""`petitionctl token issue` and `petitionctl keys rotate|list`: the token alone on stdout,
refusals with exit status 2, rotation keeping older tokens valid."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from petitionctl.cli import main
from shared.auth.settings import AuthSettings
from shared.auth.verify import build_verifier
from shared.identity import Principal, Role


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PETITION_RUN_DIR", str(tmp_path))
    return tmp_path


def _issue(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["token", "issue", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _principal(run_dir: Path, token: str) -> Principal:
    return asyncio.run(build_verifier(AuthSettings(), run_dir).verify(token))


def test_the_token_alone_on_stdout_for_the_shell(run_dir: Path) -> None:
    argv = [sys.executable, "-m", "petitionctl.cli", "token", "issue", "--subject", "op-001", "--role", "operator"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=Path(__file__).parents[2],
                          env={"PETITION_RUN_DIR": str(run_dir), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.strip().count(".") == 2
    assert _principal(run_dir, done.stdout.strip()) == Principal("op-001", Role.OPERATOR)
    assert (run_dir / "secrets" / "jwt" / "keyring.json").exists()  # created on first use


def test_scopes_are_checked_and_carried(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _issue(capsys, "--subject", "d-1", "--role", "department", "--department", "A3-HOUSING",
                          "--department", "A-12345", "--department", "A3-S01", "--ttl", "30m")
    assert code == 0
    token = out.strip()
    assert _principal(run_dir, token) == Principal("d-1", Role.DEPARTMENT,
                                                   frozenset({"A3-HOUSING", "A-12345", "A3-S01"}))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1800
    for area, code_of in (("A3", "430103"), ("A", "430100"), ("P", "430000"), ("430201", "430201")):
        code, out, _ = _issue(capsys, "--subject", "s-1", "--role", "supervisor", "--area", area)
        assert code == 0 and _principal(run_dir, out.strip()).area == code_of


@pytest.mark.parametrize(("args", "says"), [
    (["--role", "boss"], "unknown role"),
    (["--role", "department"], "needs at least one --department"),
    (["--role", "department", "--department", "A3-NOWHERE"], "A3-NOWHERE"),
    (["--role", "department", "--department", "a3-housing"], "a3-housing"),
    (["--role", "supervisor"], "needs --area"),
    (["--role", "supervisor", "--area", "Z9"], "not in the gazetteer"),
    (["--role", "supervisor", "--area", "430199"], "not in the gazetteer"),
    (["--role", "operator", "--department", "A3-HOUSING"], "department role's scope"),
    (["--role", "triage", "--area", "A3"], "supervisor role's scope"),
    (["--role", "operator", "--ttl", "8d"], "over the maximum"),
    (["--role", "operator", "--ttl", "soon"], "not a duration"),
])
def test_refusals_exit_2_with_a_message_and_nothing_on_stdout(capsys: pytest.CaptureFixture[str],
                                                              args: list[str], says: str) -> None:
    code, out, err = _issue(capsys, "--subject", "x-1", *args)
    assert code == 2 and out == ""
    assert err.startswith("petitionctl token issue: error: ") and says in err


def test_the_maximum_is_a_setting(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PETITION_JWT_MAX_TTL_SECONDS", "3600")
    code, _, err = _issue(capsys, "--subject", "x", "--role", "operator")
    assert code == 2 and "DEFAULT_TTL_SECONDS exceeds" in err  # the default (8h) is over it
    monkeypatch.setenv("PETITION_JWT_DEFAULT_TTL_SECONDS", "600")
    assert _issue(capsys, "--subject", "x", "--role", "operator", "--ttl", "2h")[0] == 2
    code, out, _ = _issue(capsys, "--subject", "x", "--role", "operator")
    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert code == 0 and claims["exp"] - claims["iat"] == 600


def test_rotate_signs_with_a_new_key_and_keeps_the_old_tokens_valid(run_dir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    old = _issue(capsys, "--subject", "op-1", "--role", "operator")[1].strip()
    assert main(["keys", "rotate"]) == 0
    listing = capsys.readouterr().out
    new = _issue(capsys, "--subject", "op-2", "--role", "operator")[1].strip()
    old_kid, new_kid = (jwt.get_unverified_header(t)["kid"] for t in (old, new))
    assert old_kid != new_kid and f"new tokens are signed with {new_kid}" in listing
    assert f"{old_kid}  created" in listing and "verifies until" in listing
    assert _principal(run_dir, old).subject == "op-1" and _principal(run_dir, new).subject == "op-2"
    ring = json.loads((run_dir / "secrets" / "jwt" / "keyring.json").read_text())
    assert ring["active"] == new_kid and len(ring["keys"]) == 2


def test_a_triage_token_works_the_routing_tables_triage_desk(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _issue(capsys, "--subject", "desk-1", "--role", "triage")
    assert code == 0
    assert _principal(run_dir, out.strip()) == Principal("desk-1", Role.TRIAGE, frozenset({"TRIAGE"}))
    code, out, err = _issue(capsys, "--subject", "desk-1", "--role", "triage", "--department", "A3-HOUSING")
    assert code == 2 and out == "" and "triage desk TRIAGE" in err
