"""What every console page shares: the templates, the session cookie, CSRF, error pages.

What must hold:

* the session cookie carries only a random secret; it is ``HttpOnly`` (no script reads it),
  ``SameSite=Strict`` (no other site's page sends it) and, when the console is served over
  HTTPS (``PETITION_CONSOLE_SECURE_COOKIES``), ``Secure``;
* every form that changes something carries its session's CSRF token, compared in constant
  time; the sign-in form (no session yet) carries a token bound to a cookie of its own;
* a page that needs a session sends a person without one to the sign-in page, and back to the
  page after signing in (only a path of the console: never another site);
* the platform's errors become a page in Chinese with the HTTP status of the API's answer.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.intake.accounts import Session, session_of
from services.intake.accounts_store import AccountStore
from services.intake.views import LOCAL
from shared.errors import Conflict, Forbidden, NotFound, PetitionError, Unauthenticated, Unavailable
from shared.store import UnitOfWork

SESSION_COOKIE = "petition_session"
LOGIN_COOKIE = "petition_login_csrf"
HERE = Path(__file__).resolve().parent

ROLE_NAMES = {
    "operator": "话务员", "department": "承办单位", "triage": "分派员", "supervisor": "督查员",
    "auditor": "审计员", "admin": "管理员",
}
STATE_NAMES = {
    "running": "计时中", "warned": "即将超期", "breached": "已超期", "stopped": "已停止",
    "breached_stopped": "超期后停止", "paused": "已暂停",
}
CLOCK_NAMES = {"sign_for": "签收", "first_contact": "首次联系", "resolution": "办结", "extension": "延期",
               "acceptance": "受理告知", "follow_up": "回访"}
#: a petition's timeline, in words (the actions by their buttons' names)
EVENT_NAMES = {
    "submitted": "受理", "routed": "派单", "reassigned": "改派", "clock_armed": "时限起算", "clock_paused": "时限暂停",
    "clock_resumed": "时限恢复", "clock_stopped": "时限停止", "deadline_warning": "即将超期提醒",
    "deadline_breached": "超期", "deadline_extended": "时限延长", "escalated": "升级督办", "supervision_opened": "督办",
    "supervision_closed": "督办关闭", "supervision_overdue": "督办逾期", "open_supervision": "发起督办",
    "close_supervision": "申请关闭督办", "accept": "签收", "return": "退单", "resolve": "办结", "contact": "联系诉求人",
    "pause": "暂停", "resume": "恢复", "request_extension": "申请延期", "approve_extension": "批准延期",
    "reject_extension": "驳回延期", "assign": "人工分派", "follow_up": "回访", "reopened": "重办",
    "incident_linked": "并案", "unlink": "撤销并案",
}
#: early warning (预警), in words
ALERT_KINDS = {"surge": "激增", "cluster": "聚集（并案）"}
ALERT_WINDOWS = {"hour": "小时", "day": "日"}
ALERT_LEVELS = {1: "一般", 2: "较高", 3: "高"}
RISK_REASONS = {"group_petition": "集体访", "repeat_petitioner": "重复信访", "accusation": "检举控告",
                "many_petitions": "件数多"}
AREA_LEVELS = {"province": "省", "city": "市", "district": "区县", "street": "街道", "community": "社区"}
STATUS_NAMES = {
    "submitted": "已受理", "triage": "待分派", "assigned": "待签收", "accepted": "办理中", "returned": "已退单",
    "paused": "已暂停", "resolved": "已办结（待回访）", "closed": "已关闭", "reopened": "重办中",
    "unreachable": "回访未联系上",
}


def _local(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return ""
    return value.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


def _left(value: Any, now: datetime | None = None) -> str:
    """Time left until `value` in words (negative: overdue by)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return ""
    seconds = int((value - (now or datetime.now(UTC))).total_seconds())
    sign, seconds = ("超期 ", -seconds) if seconds < 0 else ("剩余 ", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{sign}{days}天{hours}小时"
    return f"{sign}{hours}小时{rest // 60}分钟"


TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(local=_local, left=_left)
TEMPLATES.globals.update(submission_id=lambda: secrets.token_urlsafe(12))
TEMPLATES.globals.update(ROLE_NAMES=ROLE_NAMES, STATE_NAMES=STATE_NAMES, CLOCK_NAMES=CLOCK_NAMES,
                         STATUS_NAMES=STATUS_NAMES, EVENT_NAMES=EVENT_NAMES, ALERT_KINDS=ALERT_KINDS,
                         ALERT_WINDOWS=ALERT_WINDOWS, ALERT_LEVELS=ALERT_LEVELS, AREA_LEVELS=AREA_LEVELS,
                         RISK_REASONS=RISK_REASONS)


def page(name: str, context: Mapping[str, Any], *, status: int = 200, session: Session | None = None) -> HTMLResponse:
    """A rendered page; `session` fills in the signed-in person and the CSRF token of its forms."""
    values = {"session": session, "csrf_token": session.csrf_token if session else "", **context}
    response = HTMLResponse(TEMPLATES.get_template(name).render(values), status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def error_status(exc: PetitionError) -> int:
    for family, status in ((NotFound, 404), (Forbidden, 403), (Conflict, 409), (Unavailable, 503),
                           (Unauthenticated, 401)):
        if isinstance(exc, family):
            return status
    return 422


def error_page(exc: PetitionError, session: Session | None) -> HTMLResponse:
    messages = {404: "没有找到这条诉求，或您无权查看。", 403: "您的账号无权进行此操作。",
                409: "诉求当前的状态不允许此操作。", 503: "系统暂时繁忙，请稍后重试。"}
    status = error_status(exc)
    return page("error.html", {"status": status, "message": messages.get(status, "提交的内容有误。"),
                               "detail": exc.message if status in (409, 422) else ""},
                status=status, session=session)


class Cookies:
    """How the console sets its cookies (``Secure`` when served over HTTPS)."""

    def __init__(self, secure: bool) -> None:
        self.secure = secure

    def set_session(self, response: Response, secret: str, max_age: int) -> None:
        response.set_cookie(SESSION_COOKIE, secret, max_age=max_age, path="/", httponly=True, samesite="strict",
                            secure=self.secure)

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=self.secure)

    def login_token(self, request: Request) -> tuple[str, bool]:
        """The sign-in form's CSRF token: the cookie's, or a new one (True: set it)."""
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if 32 <= len(token) <= 128:
            return token, False
        return secrets.token_urlsafe(32), True

    def set_login_token(self, response: Response, token: str) -> None:
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/console/login", httponly=True,
                            samesite="strict", secure=self.secure)


def same_token(given: object, expected: str) -> bool:
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


async def current_session(request: Request, accounts: UnitOfWork[AccountStore]) -> Session | None:
    return await session_of(accounts, request.cookies.get(SESSION_COOKIE), now=datetime.now(UTC))


def to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of the console, never another site."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


def csrf_refused(session: Session | None) -> HTMLResponse:
    return page("error.html", {"status": 403, "message": "表单已失效（缺少或错误的校验码），请刷新页面后重试。",
                               "detail": ""}, status=403, session=session)
