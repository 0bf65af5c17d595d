"""``petitionctl token issue`` and ``petitionctl keys rotate|list``: the embedded issuer's commands.

``token issue`` prints the token alone on stdout (``TOKEN=$(petitionctl token issue …)``) and
refuses, with a message on stderr and exit status 2, a principal that could not act: an
unknown role, a department role without departments, a supervisor without an area, a
department code that names no unit, an area not in the gazetteer, a scope the role does not
take, a lifetime over the maximum. The key ring is created on first use.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from shared.auth.claims import parse_duration
from shared.auth.settings import AuthSettings
from shared.identity import ROLES, Principal, Role
from shared.settings import Settings, load_settings

USAGE_ERROR = 2


class Refused(Exception):
    """A request the command will not carry out (exit status 2)."""


def _key_folder(settings: Settings, auth: AuthSettings) -> Path:
    return auth.key_folder(settings.run_dir)


def _area_code(settings: Settings, value: str) -> str:
    """The 6-digit code of an area named by its code or its token (A3, A, P)."""
    from shared.reference.files import GAZETTEER, load_directory

    gazetteer = load_directory(settings.routing_table_path, settings.gazetteer_path or GAZETTEER).gazetteer
    for area in gazetteer.areas():
        if value in (area.code, area.token):
            return area.code
    raise Refused(f"area {value!r} is not in the gazetteer (give a 6-digit area code or a token like A3, A or P)")


def _check_units(settings: Settings, codes: list[str]) -> None:
    from services.intake.reference import load_reference

    units = load_reference(settings).units
    unknown = sorted(set(codes) - units)
    if unknown:
        raise Refused(f"no unit has the code {', '.join(unknown)} (a department, a 12345 office or a reporting unit)")


def _triage_desk(settings: Settings) -> str:
    from services.intake.reference import load_reference

    return load_reference(settings).triage


def principal_from(args: argparse.Namespace, settings: Settings) -> Principal:
    if args.role not in ROLES:
        raise Refused(f"unknown role {args.role!r} (roles: {', '.join(ROLES)})")
    role = Role(args.role)
    departments: list[str] = args.department or []
    if role is Role.DEPARTMENT and not departments:
        raise Refused("a department token needs at least one --department")
    if role is Role.TRIAGE:
        # the desk it works: the routing table's triage desk (its code is the table's to say)
        desk = _triage_desk(settings)
        if departments and departments != [desk]:
            raise Refused(f"a triage token works the triage desk {desk}, not {', '.join(departments)}")
        departments = [desk]
    elif role is not Role.DEPARTMENT and departments:
        raise Refused(f"--department is the department role's scope, not the {role.value} role's")
    if role is Role.SUPERVISOR and not args.area:
        raise Refused("a supervisor token needs --area")
    if role is not Role.SUPERVISOR and args.area:
        raise Refused(f"--area is the supervisor role's scope, not the {role.value} role's")
    if not args.subject.strip():
        raise Refused("--subject must name a member of staff")
    if departments:
        _check_units(settings, departments)
    area = _area_code(settings, args.area) if args.area else None
    return Principal(subject=args.subject, role=role, departments=frozenset(departments), area=area)


def _token_issue(args: argparse.Namespace) -> int:
    from shared.auth.issuer import issue_token

    try:
        try:
            settings, auth = load_settings(), AuthSettings()
        except ValueError as exc:  # pydantic's ValidationError: a setting that cannot work
            raise Refused(f"the settings are not usable: {exc}") from None
        if not auth.jwt_embedded:
            raise Refused("the embedded issuer is off (PETITION_JWT_EMBEDDED=false): tokens come from the OIDC"
                          " provider")
        try:
            ttl = parse_duration(args.ttl) if args.ttl else auth.jwt_default_ttl_seconds
        except ValueError as exc:
            raise Refused(str(exc)) from None
        if ttl > auth.jwt_max_ttl_seconds:
            raise Refused(f"--ttl {args.ttl} is over the maximum of {auth.jwt_max_ttl_seconds} s"
                          " (PETITION_JWT_MAX_TTL_SECONDS)")
        principal = principal_from(args, settings)
    except Refused as exc:
        print(f"petitionctl token issue: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    token = issue_token(_key_folder(settings, auth), principal, issuer=auth.jwt_issuer, audience=auth.jwt_audience,
                        ttl_seconds=ttl, max_ttl_seconds=auth.jwt_max_ttl_seconds, now=int(time.time()))
    print(token)
    return 0


def _when(epoch: int | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _keys_list(args: argparse.Namespace) -> int:
    from shared.auth.keys import ensure_keys

    folder = _key_folder(load_settings(), AuthSettings())
    ring = ensure_keys(folder, int(time.time()))
    print(f"key ring {folder}")
    for key in ring.keys:
        state = "active (signs)" if key.kid == ring.active else f"retired {_when(key.retired_at)}"
        print(f"  {key.kid}  created {_when(key.created_at)}  {state}  verifies until {_when(key.verify_until)}")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    from shared.auth.keys import rotate

    auth = AuthSettings()
    folder = _key_folder(load_settings(), auth)
    ring = rotate(folder, int(time.time()), max_ttl_seconds=auth.jwt_max_ttl_seconds,
                  leeway_seconds=auth.jwt_leeway_seconds)
    print(f"new tokens are signed with {ring.active}; the older keys verify their tokens until they expire:")
    return _keys_list(args)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="tokens of the platform's own issuer")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    issue = token_sub.add_parser("issue", help="print a signed token for a member of staff (alone on stdout)")
    issue.add_argument("--subject", required=True, help="the staff id")
    issue.add_argument("--role", required=True, help=f"one of {', '.join(ROLES)}")
    issue.add_argument("--department", action="append", metavar="CODE",
                       help="a unit the department clerk acts for (repeat for several)")
    issue.add_argument("--area", help="the supervisor's area: a 6-digit code or a token like A3, A, P")
    issue.add_argument("--ttl", help="lifetime like 30m, 8h, 7d (default PETITION_JWT_DEFAULT_TTL_SECONDS)")
    issue.set_defaults(func=_token_issue)

    keys = sub.add_parser("keys", help="the embedded issuer's signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("rotate", help="sign new tokens with a new key; older tokens stay valid until they expire") \
        .set_defaults(func=_keys_rotate)
    keys_sub.add_parser("list", help="the keys of the ring and until when each verifies").set_defaults(func=_keys_list)
