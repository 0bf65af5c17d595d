"""The console over HTTP, as a browser without scripts uses it: people created with
``petitionctl users add``, signing in, the operator desk, the department workbench, a petition's
page, the public tracking page; CSRF, lock-out and each department's confinement."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from shared.identity import Principal, Role
from tests.integration.conftest import Stack, petition, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "a long console password"  # noqa: S105 - the test accounts'
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(stack: Stack, username: str, *args: str, password: str = PASSWORD) -> str:
    done = stack.petitionctl("users", "add", "--username", username, *args, "--password-stdin", input=password + "\n")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def people(stack: Stack) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    names = {"operator": f"op-{suffix}", "housing": f"housing-{suffix}", "urban": f"urban-{suffix}"}
    assert "created" in add_user(stack, names["operator"], "--role", "operator")
    add_user(stack, names["housing"], "--role", "department", "--department", "A3-HOUSING")
    add_user(stack, names["urban"], "--role", "department", "--department", "A3-URBAN")
    return names


def browser(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, timeout=10, follow_redirects=True)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return html.unescape(found.group(1))


def sign_in(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/console/login")
    return client.post("/console/login", data={"username": username, "password": password,
                                               "csrf_token": csrf_of(form), "next": "/console/"})


@pytest.fixture
def operator(stack: Stack, people: dict[str, str]) -> Iterator[httpx.Client]:
    with browser(stack) as c:
        assert sign_in(c, people["operator"]).status_code == 200
        yield c


def test_the_sign_in_page_names_its_fields_and_signs_people_in_with_a_strict_cookie(
    stack: Stack, people: dict[str, str]
) -> None:
    with browser(stack) as c:
        page = c.get("/console/desk")  # not signed in: to the sign-in page, and back afterwards
        assert page.url.path == "/console/login" and page.url.params["next"] == "/console/desk"
        for label in ('<label for="username">用户名</label>', '<label for="password">密码</label>',
                      '<button type="submit">登录</button>'):
            assert label in page.text
        token = csrf_of(page)
        answer = c.post("/console/login", data={"username": people["operator"], "password": PASSWORD,
                                                "csrf_token": token, "next": "/console/desk"}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/console/desk"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert "新建诉求" in c.get("/console/desk").text
        # signing out ends the session on the server, not only in the browser
        secret = c.cookies.get("petition_session")
        out = c.post("/console/logout", data={"csrf_token": csrf_of(c.get("/console/desk"))})
        assert out.url.path == "/console/login"
        with browser(stack) as other:
            other.cookies.set("petition_session", secret or "")
            assert other.get("/console/desk").url.path == "/console/login"


def test_a_form_without_its_csrf_token_is_refused(stack: Stack, people: dict[str, str],
                                                  operator: httpx.Client) -> None:
    posted = operator.post("/console/desk", data={"title": "无校验码", "content": "这份表单没有校验码",
                                                  "channel": "hotline"})
    assert posted.status_code == 403 and "校验码" in posted.text
    forged = operator.post("/console/desk", data={"title": "错的校验码", "content": "内容", "channel": "hotline",
                                                  "csrf_token": "x" * 43})
    assert forged.status_code == 403
    with browser(stack) as c:  # the sign-in form has its own token, bound to a cookie
        c.get("/console/login")
        refused = c.post("/console/login", data={"username": people["operator"], "password": PASSWORD})
        assert refused.status_code == 403 and "petition_session" not in c.cookies


def test_repeated_failures_lock_an_account_and_every_refusal_reads_the_same(stack: Stack) -> None:
    name = f"locked-{uuid.uuid4().hex[:6]}"
    add_user(stack, name, "--role", "operator")
    with browser(stack) as c:
        refusals = {sign_in(c, name, "wrong password!").text.count("用户名或密码错误") for _ in range(5)}
        assert refusals == {1}
        locked = sign_in(c, name)  # the right password, while locked
        assert locked.status_code == 401 and "用户名或密码错误，或账号已暂时锁定" in locked.text
        unknown = sign_in(c, f"nobody-{uuid.uuid4().hex[:6]}")
        assert unknown.status_code == 401 and "用户名或密码错误，或账号已暂时锁定" in unknown.text
    add_user(stack, name, "--role", "operator")  # an administrator resets it: the lock is lifted
    with browser(stack) as c:
        assert sign_in(c, name).url.path == "/console/desk"


def test_the_whole_loop_from_the_desk_through_the_workbench_to_the_public_page(
    stack: Stack, people: dict[str, str], operator: httpx.Client
) -> None:
    desk = operator.get("/console/desk")
    for label in ("标题", "内容", "渠道", "诉求类型", "来电人姓名", "联系电话", "地址"):
        assert f">{label}</label>" in desk.text
    submitted = operator.post("/console/desk", data={
        "csrf_token": csrf_of(desk), "submission": csrf_of(desk)[:20], "title": "A3区某小区安置房迟迟不能交房",
        "content": "A3区某小区拆迁安置房承诺两年前交房，至今仍未建成，开发商一再拖延。回电13800001234。",
        "channel": "hotline", "kind": "", "name": "王女士", "phone": "13800001234", "address": "A3区某小区",
    })
    assert submitted.status_code == 200, submitted.text
    code = re.search(r'id="tracking-code">(XF-[0-9A-Z]+)<', submitted.text)
    assert code, submitted.text
    tracking = code.group(1)

    with browser(stack) as clerk, browser(stack) as stranger:
        assert sign_in(clerk, people["housing"]).url.path == "/console/queue"
        queue = wait_for(lambda: tracking in (page := clerk.get("/console/queue")).text and page, timeout=30)
        assert "13800001234" not in queue.text and "王女士" not in queue.text
        link = re.search(rf'href="(/console/petitions/[^"]+)">{tracking}<', queue.text)
        assert link
        petition = clerk.get(link.group(1))
        assert "138****1234" in petition.text and "13800001234" not in petition.text
        for button in ("签收", "退单", "办结"):
            assert f">{button}</button>" in petition.text
        assert ">答复内容</label>" in petition.text
        assert ">申请延期</button>" not in petition.text  # an extension is asked for after signing

        # another department's clerk: not in its queue, and its page does not exist
        assert sign_in(stranger, people["urban"]).url.path == "/console/queue"
        assert tracking not in stranger.get("/console/queue").text
        assert stranger.get(link.group(1)).status_code == 404

        act = link.group(1) + "/act"
        token = csrf_of(petition)
        accepted = clerk.post(act, data={"csrf_token": token, "action": "accept", "department": "A3-HOUSING",
                                         "note": ""})
        assert accepted.status_code == 200 and "已提交：签收" in accepted.text
        assert ">申请延期</button>" in accepted.text and ">签收</button>" not in accepted.text
        empty = clerk.post(act, data={"csrf_token": token, "action": "resolve", "department": "A3-HOUSING",
                                      "note": " "})
        assert empty.status_code == 422 and "请填写答复内容" in empty.text
        resolved = clerk.post(act, data={"csrf_token": token, "action": "resolve", "department": "A3-HOUSING",
                                         "note": "经核实，开发商已承诺年底前交房，住建局将跟踪督促。"})
        assert resolved.status_code == 200 and "已提交：办结" in resolved.text and "<h2>办理</h2>" not in resolved.text
        assert stranger.post(act, data={"csrf_token": csrf_of(stranger.get("/console/queue")), "action": "accept",
                                        "department": "A3-URBAN", "note": ""}).status_code == 404

    with browser(stack) as citizen:
        page = citizen.get("/track")
        assert '<label for="code">查询码</label>' in page.text and ">查询</button>" in page.text
        found = wait_for(lambda: "已办结" in (p := citizen.get("/track", params={"code": tracking})).text and p)
        assert "经核实，开发商已承诺年底前交房" in found.text and "A3区住房和城乡建设局" in found.text
        assert "王女士" not in found.text and "1380000" not in found.text and "拆迁安置房承诺" not in found.text
        unknown = citizen.get("/track", params={"code": "XF-ZZZZZZZZZZ"})
        malformed = citizen.get("/track", params={"code": "not a code'\"<"})
        assert unknown.status_code == malformed.status_code == 404
        field = re.compile(r'(<input id="code"[^>]*value=)"[^"]*"')  # the code asked, echoed in its field
        assert field.sub(r"\1", unknown.text) == field.sub(r"\1", malformed.text)


def test_the_queue_tells_a_watching_clerk_when_something_new_is_assigned(
    stack: Stack, people: dict[str, str], operator: httpx.Client
) -> None:
    with browser(stack) as clerk:
        sign_in(clerk, people["housing"])
        with clerk.stream("GET", "/console/events", params={"department": "A3-HOUSING"}, timeout=60) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines).startswith("retry:")
            desk = operator.get("/console/desk")
            operator.post("/console/desk", data={
                "csrf_token": csrf_of(desk), "title": "A3区小区楼盘延期交房",
                "content": "A3区某楼盘开发商延期交房已经一年，住建部门请督促。", "channel": "hotline"})
            for line in lines:
                if line == "event: queue":
                    break
            else:
                pytest.fail("the stream ended without a queue event")


def test_the_desk_shows_the_routers_suggestion_and_warns_of_the_callers_open_petitions(
    stack: Stack, operator: httpx.Client
) -> None:
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    desk = operator.get("/console/desk")
    token = csrf_of(desk)
    draft = {"csrf_token": token, "title": "A3区某小区安置房迟迟不能交房",
             "content": "A3区某小区拆迁安置房承诺两年前交房，至今仍未建成。", "phone": phone, "channel": "hotline"}
    first = operator.post("/console/desk/suggest", data=draft).json()
    assert first["suggestion"]["department"]["code"] == "A3-HOUSING"
    assert first["suggestion"]["rule"] == "construction@district" and first["suggestion"]["repeat_of"] is None
    assert first["open_petitions"] == 0
    operator.post("/console/desk", data={**draft, "name": "李先生"})
    again = wait_for(lambda: (a := operator.post("/console/desk/suggest", data=draft).json())["open_petitions"]
                     and a["suggestion"]["repeat_of"] and a, timeout=30)
    assert again["open_petitions"] == 1 and again["suggestion"]["rule"].startswith("repeat-of:")
    assert operator.post("/console/desk/suggest", data={**draft, "csrf_token": "x" * 43}).status_code == 403

    # the search by phone finds it, and the audit log says who looked, when and why
    found = operator.post("/console/search", data={"csrf_token": token, "phone": phone, "reason": "来电人询问进度"})
    assert found.status_code == 200 and "该号码的诉求 1 件" in found.text and phone not in found.text
    pid = re.search(r'href="/console/petitions/([^"]+)"', found.text)
    assert pid
    with stack.client() as api:
        auditor = stack.token(Principal("aud-console", Role.AUDITOR))
        log = api.get("/v1/audit", params={"petition": pid.group(1)}, headers={"Authorization": f"Bearer {auditor}"})
    assert [(e["action"], e["reason"]) for e in log.json()["items"]] == [("search_by_phone", "来电人询问进度")]
    refused = operator.post("/console/search", data={"csrf_token": token, "phone": phone, "reason": ""})
    assert refused.status_code == 422


def test_the_routers_suggestions_are_for_operators_and_the_triage_desk_only(stack: Stack) -> None:
    url = f"{stack.health_url('router')}/v1/suggestions"
    body = {"title": "A3区某小区安置房迟迟不能交房", "content": "安置房两年前承诺交房，至今仍未建成。"}
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    clerk = stack.token(Principal("clerk-s", Role.DEPARTMENT, frozenset({"A3-HOUSING"})))
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {clerk}"}, timeout=10).status_code == 403
    op = {"Authorization": f"Bearer {stack.token(Principal('op-s', Role.OPERATOR))}"}
    answer = httpx.post(url, json=body, headers=op, timeout=10)
    assert answer.status_code == 200 and answer.json()["department"]["code"] == "A3-HOUSING"
    bads: list[object] = [{"title": 3}, {"title": "x", "persons": 0}, {"title": "x", "petitioner_key": "138000x"},
                          []]
    for bad in bads:
        assert httpx.post(url, json=bad, headers=op, timeout=10).status_code == 422, bad


def test_the_supervisor_and_the_triage_desk_have_their_pages(stack: Stack) -> None:
    sup, desk = f"sup-{uuid.uuid4().hex[:6]}", f"desk-{uuid.uuid4().hex[:6]}"
    add_user(stack, sup, "--role", "supervisor", "--area", "A3")
    add_user(stack, desk, "--role", "triage")
    with stack.client() as api:
        pid = api.post("/v1/petitions", json=petition()).json()["id"]
        wait_for(lambda: api.get(f"/v1/petitions/{pid}").json()["status"] == "assigned", timeout=30)
    with browser(stack) as c:
        page = sign_in(c, sup)
        assert page.url.path == "/console/overview"
        for heading in ("即将超期与已超期", "督办", "各单位办理情况", "零报告"):
            assert f">{heading}</h2>" in page.text
        assert c.get("/console/desk").status_code == 403
        # a 督办 opened from the petition's page, in the district government's name
        shown = c.get(f"/console/petitions/{pid}")
        assert ">发起督办</button>" in shown.text
        opened = c.post(f"/console/petitions/{pid}/supervise", data={"csrf_token": csrf_of(shown),
                                                                     "department": "A3-GOV", "note": "请加快办理"})
        assert opened.status_code == 200 and "已提交：督办" in opened.text
        overview = wait_for(lambda: pid in (o := c.get("/console/overview")).text and o, timeout=30)
        order = re.search(r'action="/console/supervision/([0-9a-f-]+)/close"', overview.text)
        assert order
        closed = c.post(f"/console/supervision/{order.group(1)}/close",
                        data={"csrf_token": csrf_of(overview), "department": "A3-GOV", "note": "已督促"})
        assert closed.status_code == 200 and "已提交关闭督办" in closed.text
    # a petition two departments returned reaches the desk
    with stack.client() as api:
        pid = api.post("/v1/petitions", json=petition()).json()["id"]
        for _ in range(2):
            held = wait_for(lambda: (p := api.get(f"/v1/petitions/{pid}").json())["status"] == "assigned" and p,
                            timeout=30)["department"]["code"]
            clerk = stack.token(Principal(f"clerk-{held}", Role.DEPARTMENT, frozenset({held})))
            answer = api.post(f"/v1/petitions/{pid}/actions", headers={"Authorization": f"Bearer {clerk}"},
                              json={"action": "return", "department": held, "note": "不属本单位职责"})
            assert answer.status_code == 202, answer.text
        wait_for(lambda: api.get(f"/v1/petitions/{pid}").json()["status"] == "triage", timeout=30)
    with browser(stack) as c:
        page = sign_in(c, desk)
        assert page.url.path == "/console/triage" and "分派台（TRIAGE）" in page.text
        row = page.text[page.text.index(f"/console/petitions/{pid}"):]
        assert "城乡建设" in row and 'aria-label="分派给' in row  # the router's best categories, each assignable
        assigned = c.post(f"/console/petitions/{pid}/act", data={
            "csrf_token": csrf_of(page), "action": "assign", "department": "TRIAGE", "target_department": "A3-URBAN"})
        assert assigned.url.path == "/console/triage" and "已分派" in assigned.text
    with stack.client() as api:
        wait_for(lambda: (api.get(f"/v1/petitions/{pid}").json()["department"] or {}).get("code") == "A3-URBAN",
                 timeout=30)
