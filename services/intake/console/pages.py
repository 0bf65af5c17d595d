"""The console's pages: sign-in and sign-out; the operator desk (with the router's live
suggestion and the audited search by phone); the department workbench (the live queue) and a
petition's page; the supervisor's overview (with its area's early-warning alerts, and a
petition's link to an incident undone from there); the triage desk; the public tracking page.

Pages are thin, as the API's routes are: read the form, call the same service layer
(:mod:`services.intake.handlers`, :mod:`services.intake.views`) with the signed-in person's
principal, render. The access rules are the service layer's, so a page shows a clerk of another
department the same "not found" the API answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError

from services.intake import accounts, handlers, metrics, views
from services.intake.accounts_store import AccountStore
from services.intake.api.permissions import PAGES
from services.intake.commands import ActionIn, CloseSupervisionIn, OpenSupervisionIn, PetitionIn
from services.intake.console import web
from services.intake.console.suggest import RouterSuggestions
from services.intake.domain.accounts import LockoutPolicy
from services.intake.domain.actions import ACTION_RULES
from services.intake.domain.masking import mask_personal_numbers as masked
from services.intake.pii import petitioner_key
from services.intake.store import IntakeStore
from shared.errors import Forbidden, PetitionError, Unauthenticated
from shared.identity import Principal, Role
from shared.store import UnitOfWork

ACTION = TypeAdapter[Any](ActionIn)
CHANNELS = {"hotline": "12345热线", "online": "网上信访", "letter": "来信", "visit": "来访", "app": "移动端",
            "fax": "传真"}
KINDS = {"": "一般诉求", "claim": "求决", "suggestion": "建议", "accusation": "检举控告"}
#: the workbench's buttons: the action, its label, whether a note is required and what it is called
DEPARTMENT_ACTIONS = {
    "supervise": ("督办", True, "督办事由"),  # a supervisor's, shown to supervisors only
    "accept": ("签收", False, "备注"),
    "return": ("退单", True, "退单理由"),
    "request_extension": ("申请延期", True, "延期理由"),
    "resolve": ("办结", True, "答复内容"),
    "unlink": ("撤销并案", True, "撤销理由"),  # a supervisor's, on a petition the watch linked to an incident
}
#: the console's own files, by name (nothing else is served from the folder)
STATIC = {
    "console.css": ((web.HERE / "static" / "console.css").read_bytes(), "text/css; charset=utf-8"),
    "console.js": ((web.HERE / "static" / "console.js").read_bytes(), "text/javascript; charset=utf-8"),
}
#: the rows of a queue page: the most urgent first (a clerk works from the top)
QUEUE_LIMIT = 100
OVERVIEW_LIMIT = 100
#: the triage desk's rows that get the router's suggestions (the top of its queue)
TRIAGE_SUGGESTIONS = 30
#: a supervisor's figures (aggregates over the whole area) are recomputed at most this often;
#: the clocks at risk and the 督办 are read live
FIGURES_SECONDS = 30.0
EVENTS_EVERY_SECONDS = 2.0


def _field_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        out.setdefault(where or "form", err["msg"])
    return out


def build(
    uow: Callable[[], UnitOfWork[IntakeStore]], accounts_uow: Callable[[], UnitOfWork[AccountStore]],
    ctx: handlers.Intake, *, secure_cookies: bool, policy: LockoutPolicy,
    suggestions: RouterSuggestions | None = None,
) -> APIRouter:
    """The console's routes (not in the API's spec: pages, not operations)."""
    pages = APIRouter(include_in_schema=False)
    cookies = web.Cookies(secure_cookies)

    async def signed_in(request: Request) -> accounts.Session | None:
        return await web.current_session(request, accounts_uow())

    async def admit(request: Request, page: tuple[str, str]) -> tuple[accounts.Session, Any] | Response:
        """The person on `page` (method, path template) and, for a POST, the form: or the answer
        instead — the sign-in page, a page refusing the role (the permissions table's `PAGES`),
        or a form without its session's CSRF token refused."""
        session = await signed_in(request)
        if session is None:
            return web.to_sign_in(request)
        if session.principal.role not in PAGES[page]:
            return web.error_page(_forbidden(), session)
        if page[0] != "POST":
            return session, None
        form = await request.form()
        if not web.same_token(form.get("csrf_token"), session.csrf_token):
            return web.csrf_refused(session)
        return session, form

    # --- signing in and out ---------------------------------------------------------------

    @pages.get("/console/login")
    async def login_form(request: Request) -> HTMLResponse:
        token, new = cookies.login_token(request)
        response = web.page("login.html", {"next": web.safe_next(request.query_params.get("next")), "error": "",
                                           "login_token": token})
        if new:
            cookies.set_login_token(response, token)
        return response

    @pages.post("/console/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        target = web.safe_next(str(form.get("next") or ""))
        if not web.same_token(form.get("csrf_token"), request.cookies.get(web.LOGIN_COOKIE) or ""):
            return web.csrf_refused(None)
        username, password = str(form.get("username") or ""), str(form.get("password") or "")
        try:
            done = await accounts.sign_in(accounts_uow(), username, password, now=datetime.now(UTC), policy=policy)
        except Unauthenticated as refused:
            metrics.CONSOLE_SIGN_INS.labels("refused").inc()
            return web.page("login.html", {"next": target, "error": refused.message, "username": username,
                                           "login_token": request.cookies.get(web.LOGIN_COOKIE)}, status=401)
        metrics.CONSOLE_SIGN_INS.labels("signed_in").inc()
        response = RedirectResponse(target, status_code=303)
        cookies.set_session(response, done.secret, int(policy.session_for.total_seconds()))
        return response

    @pages.post("/console/logout")
    async def logout(request: Request) -> Response:
        session = await signed_in(request)
        form = await request.form()
        if session is not None and not web.same_token(form.get("csrf_token"), session.csrf_token):
            return web.csrf_refused(session)
        await accounts.sign_out(accounts_uow(), request.cookies.get(web.SESSION_COOKIE))
        response = RedirectResponse("/console/login", status_code=303)
        cookies.clear_session(response)
        return response

    @pages.get("/console/")
    async def home(request: Request) -> Response:
        session = await signed_in(request)
        if session is None:
            return web.to_sign_in(request)
        role = session.principal.role
        if role is Role.OPERATOR:
            return RedirectResponse("/console/desk", status_code=303)
        if role is Role.DEPARTMENT:
            return RedirectResponse("/console/queue", status_code=303)
        if role is Role.SUPERVISOR:
            return RedirectResponse("/console/overview", status_code=303)
        if role is Role.TRIAGE:
            return RedirectResponse("/console/triage", status_code=303)
        return web.page("home.html", {}, session=session)

    @pages.get("/console")
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=308)

    # --- the operator desk ------------------------------------------------------------------

    def desk(session: accounts.Session, *, values: dict[str, str] | None = None,
             errors: dict[str, str] | None = None, accepted: Any = None, status: int = 200) -> HTMLResponse:
        return web.page("desk.html", {"values": values or {}, "errors": errors or {}, "accepted": accepted,
                                      "channels": CHANNELS, "kinds": KINDS}, session=session, status=status)

    @pages.get("/console/desk")
    async def desk_form(request: Request) -> Response:
        admitted = await admit(request, ("GET", "/console/desk"))
        if isinstance(admitted, Response):
            return admitted
        session, _ = admitted
        return desk(session)

    @pages.post("/console/desk")
    async def desk_submit(request: Request) -> Response:
        admitted = await admit(request, ("POST", "/console/desk"))
        if isinstance(admitted, Response):
            return admitted
        session, form = admitted
        values = {k: str(form.get(k) or "").strip() for k in
                  ("title", "content", "channel", "kind", "name", "phone", "address", "submission", "answer")}
        body: dict[str, Any] = {"title": values["title"], "content": values["content"],
                                "channel": values["channel"] or "hotline"}
        if values["kind"]:
            body["kind"] = values["kind"]
        if values["name"] or values["phone"]:
            body["petitioner"] = {k: v for k, v in (("name", values["name"]), ("phone", values["phone"])) if v}
        if values["address"]:
            body["location"] = {"address": values["address"]}
        try:
            petition = PetitionIn.model_validate(body)
        except ValidationError as invalid:
            return desk(session, values=values, errors=_field_errors(invalid), status=422)
        try:
            # the form's own id makes a double submit (a second Enter, a reload) one petition
            accepted, new = await handlers.submit_petition(
                uow(), ctx, session.principal, petition, idempotency_key=values["submission"][:64] or None,
                now=datetime.now(UTC), answered=values["answer"][:2000] or None)
        except PetitionError as refused:
            if refused.field:
                return desk(session, values=values, errors={refused.field: refused.message}, status=422)
            return web.error_page(refused, session)
        if new:
            kind = petition.kind.value if petition.kind else "unspecified"
            metrics.SUBMITTED.labels(petition.channel.value, kind).inc()
        return desk(session, accepted=accepted)

    @pages.post("/console/desk/suggest")
    async def desk_suggest(request: Request) -> Response:
        """While a call is typed in: where the router would send it, and whether the caller
        has petitions still being handled (JSON, for the desk's script)."""
        session = await signed_in(request)
        if session is None:
            return JSONResponse({"error": "signed_out"}, status_code=401)
        if session.principal.role not in PAGES[("POST", "/console/desk/suggest")]:
            return JSONResponse({"error": "role_cannot_read"}, status_code=403)
        form = await request.form()
        if not web.same_token(form.get("csrf_token"), session.csrf_token):
            return JSONResponse({"error": "csrf"}, status_code=403)
        text = {k: str(form.get(k) or "").strip()[:5000] for k in ("title", "content", "address", "phone", "kind",
                                                                   "channel")}
        open_count = 0
        if text["phone"]:
            try:
                open_count = await handlers.caller_has_open_petitions(uow(), ctx, session.principal, text["phone"])
            except PetitionError:
                open_count = 0
        found = None
        if suggestions is not None and (text["title"] or text["content"]):
            key = petitioner_key(ctx.hmac_key, id_number=None, phone=text["phone"]) if text["phone"] else None
            petition: dict[str, Any] = {"title": masked(text["title"]), "content": masked(text["content"]),
                                        "channel": text["channel"] or "hotline", "petitioner_key": key}
            if text["kind"]:
                petition["kind"] = text["kind"]
            if text["address"]:
                petition["location"] = {"address": masked(text["address"])}
            found = await suggestions.ask(session.principal, petition)
        return JSONResponse({"suggestion": found, "open_petitions": open_count},
                            headers={"Cache-Control": "no-store"})

    @pages.get("/console/search")
    async def search_form(request: Request) -> Response:
        admitted = await admit(request, ("GET", "/console/search"))
        if isinstance(admitted, Response):
            return admitted
        session, _ = admitted
        return web.page("search.html", {"found": None, "values": {}}, session=session)

    @pages.post("/console/search")
    async def search(request: Request) -> Response:
        """A caller's petitions by the number the caller gives: audited, with a reason."""
        admitted = await admit(request, ("POST", "/console/search"))
        if isinstance(admitted, Response):
            return admitted
        session, form = admitted
        values = {k: str(form.get(k) or "").strip()[:200] for k in ("phone", "reason")}
        if not values["reason"]:
            return web.page("search.html", {"found": None, "values": values,
                                            "error": "请填写查询事由（将记入审计日志）。"}, session=session, status=422)
        try:
            found = await handlers.find_by_phone(uow(), ctx, session.principal, values["phone"], values["reason"],
                                                 now=datetime.now(UTC))
        except PetitionError as refused:
            if web.error_status(refused) == 422:
                return web.page("search.html", {"found": None, "values": values, "error": "请填写正确的电话号码。"},
                                session=session, status=422)
            return web.error_page(refused, session)
        # the number is not shown back: the page lists petitions, not who called
        return web.page("search.html", {"found": found, "values": {"reason": values["reason"]}}, session=session)

    # --- the department workbench -----------------------------------------------------------

    def _department(session: accounts.Session, request: Request) -> str:
        chosen = request.query_params.get("department") or ""
        own = sorted(session.principal.departments)
        return chosen if chosen in own else own[0]

    @pages.get("/console/queue")
    async def queue(request: Request) -> Response:
        admitted = await admit(request, ("GET", "/console/queue"))
        if isinstance(admitted, Response):
            return admitted
        session, _ = admitted
        department = _department(session, request)
        try:
            rows = await views.department_queue(uow(), session.principal, department, QUEUE_LIMIT)
        except PetitionError as refused:
            return web.error_page(refused, session)
        template = "queue_rows.html" if request.query_params.get("fragment") else "queue.html"
        return web.page(template, {"rows": rows, "department": department, "limit": QUEUE_LIMIT,
                                   "departments": sorted(session.principal.departments),
                                   "now": datetime.now(UTC)}, session=session)

    @pages.get("/console/triage")
    async def triage(request: Request) -> Response:
        admitted = await admit(request, ("GET", "/console/triage"))
        if isinstance(admitted, Response):
            return admitted
        session, _ = admitted
        reference = ctx.reference.current
        try:
            rows = await views.department_queue(uow(), session.principal, reference.triage, QUEUE_LIMIT)
        except PetitionError as refused:
            return web.error_page(refused, session)
        targets = sorted((code, reference.names.get(code, code)) for code in reference.departments
                         if code != reference.triage)
        # the router's best categories for each petition on the page, with where each would go
        suggested: list[Any] = [None] * len(rows)
        if suggestions is not None:
            asked = rows[:TRIAGE_SUGGESTIONS]
            suggested[:len(asked)] = await asyncio.gather(*(
                suggestions.ask(session.principal, {"title": r.title, "content": r.content}) for r in asked))
        return web.page("triage.html", {"rows": list(zip(rows, suggested, strict=True)), "desk": reference.triage,
                                        "targets": targets,
                                        "done": request.query_params.get("done") or "", "now": datetime.now(UTC)},
                        session=session)

    @pages.get("/console/events")
    async def queue_events(request: Request) -> Response:
        """Server-sent events: ``queue`` whenever the department's queue changes (a petition
        assigned, acted on, a clock warned or breached)."""
        session = await signed_in(request)
        if session is None or session.principal.role not in PAGES[("GET", "/console/events")]:
            return Response(status_code=401 if session is None else 403)
        department = _department(session, request)
        principal = session.principal

        async def stream() -> AsyncIterator[bytes]:
            last = None
            yield b"retry: 2000\n\n"
            while not await request.is_disconnected():
                if datetime.now(UTC) >= session.expires_at:
                    yield b"event: signed-out\ndata: {}\n\n"
                    return
                try:
                    rows = await views.department_queue(uow(), principal, department, QUEUE_LIMIT)
                except PetitionError:
                    rows = None  # an outage: try again at the next tick
                if rows is not None:
                    digest = hashlib.sha256(repr([(r.id, r.status, r.deadlines) for r in rows]).encode()).hexdigest()
                    if digest != last:
                        if last is not None:
                            yield f"event: queue\ndata: {len(rows)}\n\n".encode()
                        last = digest
                    else:
                        yield b": still here\n\n"
                await asyncio.sleep(EVENTS_EVERY_SECONDS)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # --- the supervisor's view ---------------------------------------------------------------

    figures: dict[str | None, tuple[float, Any]] = {}  # area -> (when, the overview with its figures)

    async def overview_page(session: accounts.Session, *, error: str = "", done: str = "",
                            status: int = 200) -> HTMLResponse:
        area = session.principal.area
        cached = figures.get(area)
        fresh = cached is not None and time.monotonic() - cached[0] < FIGURES_SECONDS
        try:
            overview, orders = await views.supervisor_overview(uow(), ctx, session.principal, OVERVIEW_LIMIT,
                                                               now=datetime.now(UTC), figures=not fresh)
        except PetitionError as refused:
            return web.error_page(refused, session)
        if fresh and cached is not None:
            overview = dataclasses.replace(overview, departments=cached[1].departments, reports=cached[1].reports)
        else:
            if len(figures) > 1000:
                figures.clear()
            figures[area] = (time.monotonic(), overview)
        try:
            warnings = (await views.alerts(uow(), ctx, session.principal, limit=OVERVIEW_LIMIT))["items"]
        except PetitionError as refused:
            return web.error_page(refused, session)
        scope = handlers.scope_of(ctx, session.principal)
        return web.page("overview.html", {
            "o": overview, "orders": orders, "alerts": warnings, "acting": f"{scope.own_token}-GOV" if scope else "",
            "error": error, "done": done, "now": datetime.now(UTC),
        }, session=session, status=status)

    @pages.get("/console/overview")
    async def overview(request: Request) -> Response:
        admitted = await admit(request, ("GET", "/console/overview"))
        if isinstance(admitted, Response):
            return admitted
        session, _ = admitted
        return await overview_page(session, done=request.query_params.get("done") or "")

    @pages.post("/console/supervision/{supervision_id}/close")
    async def close_order(request: Request, supervision_id: str) -> Response:
        admitted = await admit(request, ("POST", "/console/supervision/{supervision_id}/close"))
        if isinstance(admitted, Response):
            return admitted
        session, form = admitted
        try:
            order = uuid.UUID(supervision_id)
            body = CloseSupervisionIn(department=str(form.get("department") or ""),
                                      note=str(form.get("note") or "").strip())
            await handlers.close_supervision(uow(), ctx, session.principal, order, body, now=datetime.now(UTC))
        except ValueError as invalid:  # a malformed id, or a form the model refuses (ValidationError)
            return await overview_page(session, error=f"无法关闭督办：{invalid}", status=422)
        except PetitionError as refused:
            if web.error_status(refused) in (409, 422):
                return await overview_page(session, error=refused.message, status=web.error_status(refused))
            return web.error_page(refused, session)
        back = "/console/overview" if session.principal.role is Role.SUPERVISOR else "/console/queue"
        return RedirectResponse(f"{back}?done=close", status_code=303)

    # --- a petition ---------------------------------------------------------------------------

    async def petition_page(session: accounts.Session, ref: str, *, error: str = "", done: str = "",
                            status: int = 200) -> HTMLResponse:
        try:
            petition = await views.petition(uow(), ctx, session.principal, ref)
        except PetitionError as refused:
            return web.error_page(refused, session)
        holder = (petition.get("department") or {}).get("code")
        acting = holder if holder in session.principal.departments else None
        scope = handlers.scope_of(ctx, session.principal)
        supervising = f"{scope.own_token}-GOV" if scope is not None and holder else None
        linked = [i for i in petition.get("incidents", ()) if i["unlinked_at"] is None]
        # only the actions the petition's status allows now (the rules the service layer applies)
        allowed = {a: v for a, v in DEPARTMENT_ACTIONS.items()
                   if a in ACTION_RULES and a != "unlink" and petition["status"] in ACTION_RULES[a].allowed_from}
        return web.page("petition.html", {"p": petition, "acting": acting, "actions": allowed,
                                          "labels": DEPARTMENT_ACTIONS,
                                          "supervising": supervising, "linked": linked,
                                          "may_unlink": petition["status"] in ACTION_RULES["unlink"].allowed_from,
                                          "error": error, "done": done, "now": datetime.now(UTC)},
                        session=session, status=status)

    @pages.get("/console/petitions/{ref}")
    async def petition(request: Request, ref: str) -> Response:
        admitted = await admit(request, ("GET", "/console/petitions/{ref}"))
        if isinstance(admitted, Response):
            return admitted
        return await petition_page(admitted[0], ref[:64], done=request.query_params.get("done") or "")

    @pages.post("/console/petitions/{ref}/act")
    async def act(request: Request, ref: str) -> Response:
        admitted = await admit(request, ("POST", "/console/petitions/{ref}/act"))
        if isinstance(admitted, Response):
            return admitted
        session, form = admitted
        action = str(form.get("action") or "")
        body: dict[str, Any] = {"action": action, "department": str(form.get("department") or ""),
                                "note": str(form.get("note") or "").strip()}
        if action in DEPARTMENT_ACTIONS and DEPARTMENT_ACTIONS[action][1] and not body["note"]:
            return await petition_page(session, ref[:64], error=f"请填写{DEPARTMENT_ACTIONS[action][2]}。",
                                       status=422)
        if action == "resolve":
            body["basis"] = str(form.get("basis") or "").strip()
            body["public"] = not form.get("private")
        if action == "request_extension" and form.get("extension_days"):
            body["extension_days"] = str(form.get("extension_days"))
        if action == "assign":
            body["target_department"] = str(form.get("target_department") or "")
        try:
            parsed = ACTION.validate_python(body)
            await handlers.act(uow(), ctx, session.principal, ref[:64], parsed, now=datetime.now(UTC))
        except ValidationError as invalid:
            message = "；".join(f"{k}: {v}" for k, v in _field_errors(invalid).items())
            return await petition_page(session, ref[:64], error=message, status=422)
        except PetitionError as refused:
            if web.error_status(refused) in (409, 422):
                return await petition_page(session, ref[:64], error=refused.message, status=web.error_status(refused))
            return web.error_page(refused, session)
        metrics.ACTIONS.labels(action).inc()
        if action == "assign":  # back to the desk's queue, for the next one
            return RedirectResponse("/console/triage?done=assign", status_code=303)
        if action == "unlink" and form.get("back") == "overview":  # unlinked from the overview's alerts
            return RedirectResponse("/console/overview?done=unlink", status_code=303)
        return RedirectResponse(f"/console/petitions/{ref[:64]}?done={action}", status_code=303)

    @pages.post("/console/petitions/{ref}/follow-up")
    async def follow_up(request: Request, ref: str) -> Response:
        """The hotline records its call back to the petitioner (回访)."""
        admitted = await admit(request, ("POST", "/console/petitions/{ref}/follow-up"))
        if isinstance(admitted, Response):
            return admitted
        session, form = admitted
        reached = form.get("reached") != "0"
        body: dict[str, Any] = {"action": "follow_up", "reached": reached, "note": str(form.get("note") or "").strip()}
        if reached:
            if form.get("resolved") not in ("0", "1") or not form.get("satisfaction"):
                return await petition_page(session, ref[:64], error="请选择问题是否解决和满意度。", status=422)
            body |= {"resolved": form.get("resolved") == "1", "satisfaction": str(form.get("satisfaction"))}
        try:
            parsed = ACTION.validate_python(body)
            done = await handlers.act(uow(), ctx, session.principal, ref[:64], parsed, now=datetime.now(UTC))
        except ValidationError as invalid:
            message = "；".join(f"{k}: {v}" for k, v in _field_errors(invalid).items())
            return await petition_page(session, ref[:64], error=message, status=422)
        except PetitionError as refused:
            if web.error_status(refused) in (409, 422):
                return await petition_page(session, ref[:64], error=refused.message, status=web.error_status(refused))
            return web.error_page(refused, session)
        metrics.ACTIONS.labels("follow_up").inc()
        return RedirectResponse(f"/console/petitions/{ref[:64]}?done=follow_up&outcome={done.status}",
                                status_code=303)

    @pages.get("/console/open")
    async def open_petition(request: Request) -> Response:
        ref = (request.query_params.get("ref") or "").strip()[:64]
        if not ref:
            return RedirectResponse("/console/", status_code=303)
        return RedirectResponse(f"/console/petitions/{quote(ref, safe='')}", status_code=303)

    @pages.get("/console/static/{name}")
    async def static(name: str) -> Response:
        found = STATIC.get(name)
        if found is None:
            return Response(status_code=404)
        content, media_type = found
        return Response(content, media_type=media_type, headers={"Cache-Control": "max-age=300"})

    @pages.post("/console/petitions/{ref}/supervise")
    async def supervise(request: Request, ref: str) -> Response:
        """A supervisor opens a 督办 on a petition of its area, in its government's name."""
        admitted = await admit(request, ("POST", "/console/petitions/{ref}/supervise"))
        if isinstance(admitted, Response):
            return admitted
        session, form = admitted
        note = str(form.get("note") or "").strip()
        if not note:
            return await petition_page(session, ref[:64], error="请填写督办事由。", status=422)
        try:
            body = OpenSupervisionIn(department=str(form.get("department") or ""), note=note)
            await handlers.open_supervision(uow(), ctx, session.principal, ref[:64], body, now=datetime.now(UTC))
        except ValidationError as invalid:
            return await petition_page(session, ref[:64], error=str(invalid.errors()[0]["msg"]), status=422)
        except PetitionError as refused:
            if web.error_status(refused) in (403, 409, 422):
                return await petition_page(session, ref[:64], error=refused.message,
                                           status=web.error_status(refused))
            return web.error_page(refused, session)
        return RedirectResponse(f"/console/petitions/{ref[:64]}?done=supervise", status_code=303)

    # --- the public tracking page -------------------------------------------------------------

    @pages.get("/track")
    async def track(request: Request) -> HTMLResponse:
        code = (request.query_params.get("code") or "").strip()
        if not code:
            return web.page("track.html", {"code": "", "found": None, "asked": False})
        found = await views.public_status(uow(), code[:64])
        return web.page("track.html", {"code": code[:64], "found": found, "asked": True,
                                       "rated": request.query_params.get("rated") or ""},
                        status=200 if found else 404)

    @pages.post("/track/rate")
    async def rate(request: Request) -> Response:
        """The citizen rates the answer with the tracking code (a 回访 in their own words): the
        same rules as the hotline's call. The tracking code is the citizen's proof."""
        async with request.form(max_files=0, max_fields=10) as form:
            code = str(form.get("code") or "").strip().upper()[:64]
            resolved, satisfaction = form.get("resolved"), str(form.get("satisfaction") or "")
            note = str(form.get("note") or "").strip()[:2000]
        found = await views.public_status(uow(), code) if code else None
        if found is None:
            return web.page("track.html", {"code": code, "found": None, "asked": True}, status=404)
        try:
            parsed = ACTION.validate_python({"action": "follow_up", "reached": True, "resolved": resolved == "1",
                                             "satisfaction": satisfaction, "note": note})
            citizen = Principal(f"citizen:{code}", Role.OPERATOR)
            await handlers.follow_up(uow(), ctx, citizen, code, parsed, now=datetime.now(UTC), citizen=True)
        except ValidationError:
            return web.page("track.html", {"code": code, "found": found, "asked": True,
                                           "error": "请选择问题是否解决和满意度。"}, status=422)
        except PetitionError as refused:
            if web.error_status(refused) in (409, 422):
                return web.page("track.html", {"code": code, "found": found, "asked": True,
                                               "error": "该诉求当前不能评价（可能已评价过）。"}, status=409)
            raise
        return RedirectResponse(f"/track?code={quote(code, safe='')}&rated=1", status_code=303)

    return pages


def _forbidden() -> PetitionError:
    return Forbidden("this page is not for your role", code="role_cannot_read")
