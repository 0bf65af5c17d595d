"""The console in a real browser, as its people use it: an operator takes a call at the desk,
the department's clerk watching the queue sees the petition arrive without reloading, signs for it
and resolves it, and the petitioner reads the reply on the public tracking page; another
department's clerk neither sees nor opens it, and a form without its CSRF token is refused.

Every page visited is checked with axe-core (no serious or critical violation) and saved as a
screenshot, numbered in the order a person meets them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import AccessibilityCheck, Screenshots
from tests.service_stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PASSWORD = "a long console password"  # noqa: S105 - the test accounts'
TITLE = "A3区某小区安置房迟迟不能交房"
CONTENT = "A3区某小区拆迁安置房承诺两年前交房，至今仍未建成，开发商一再拖延。"  # routes to A3-HOUSING
REPLY = "经核实，开发商已承诺年底前交房，住建局将跟踪督促。"
#: How long the platform may take to route a petition to the department's queue (intake, Kafka,
#: the router's classification, the read model) on a busy machine.
ROUTING_TIMEOUT_MS = 45_000

Look = Callable[[Page, str], None]


@pytest.fixture(scope="module")
def people(stack: Stack) -> dict[str, str]:
    """An operator and the clerks of two departments, created as an administrator would."""
    suffix = uuid.uuid4().hex[:6]
    names = {"operator": f"op-{suffix}", "housing": f"housing-{suffix}", "urban": f"urban-{suffix}"}
    for who, role in (("operator", ["--role", "operator"]),
                      ("housing", ["--role", "department", "--department", "A3-HOUSING"]),
                      ("urban", ["--role", "department", "--department", "A3-URBAN"])):
        done = stack.petitionctl("users", "add", "--username", names[who], *role, "--password-stdin",
                                 input=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
    return names


@pytest.fixture
def look(assert_accessible: AccessibilityCheck, screenshot: Screenshots) -> Look:
    """``look(page, name)``: the page has no serious or critical axe-core violation, and is saved
    as ``<nn>-<name>.png`` (numbered in the order of the test's pages)."""
    seen: list[str] = []

    def check(page: Page, name: str) -> None:
        seen.append(name)
        screenshot(page, f"{len(seen):02d}-{name}")
        assert_accessible(page)

    return check


def sign_in(page: Page, stack: Stack, username: str, look: Look, *, landing: str) -> None:
    """Sign in through the form, with the mouse (the operator uses the keyboard)."""
    page.goto(f"{stack.base_url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login\b"))
    look(page, "login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{stack.base_url}{landing}")


def type_into(page: Page, label: str, text: str) -> None:
    """Type `text` where the focus is, which must be the field labelled `label`, then Tab on."""
    expect(page.get_by_label(label, exact=True)).to_be_focused()
    if text:
        page.keyboard.type(text)
    page.keyboard.press("Tab")


def take_a_call(page: Page, stack: Stack, operator: str, phone: str, look: Look) -> str:
    """The operator signs in and records the call at the desk with the keyboard; returns the tracking code."""
    page.goto(f"{stack.base_url}/console/desk")  # not signed in: the sign-in page, then back here
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/desk$"))
    look(page, "login-to-desk")
    type_into(page, "用户名", operator)  # the field has the focus when the page opens
    expect(page.get_by_label("密码")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stack.base_url}/console/desk")
    expect(page.get_by_role("heading", name="新建诉求")).to_be_visible()
    look(page, "desk")

    # The fields in the order Tab visits them, each found by its label.
    for label, text in (("标题", TITLE), ("内容", CONTENT), ("渠道", ""), ("诉求类型", ""), ("来电人姓名", "王女士"),
                        ("联系电话", phone)):
        type_into(page, label, text)
    expect(page.get_by_label("地址")).to_be_focused()
    page.keyboard.type("A3区某小区")
    expect(page.get_by_label("渠道")).to_have_value("hotline")
    page.keyboard.press("Control+Enter")  # the console's shortcut: submits from any field
    code = page.locator("#tracking-code")
    expect(code).to_have_text(re.compile(r"^XF-[0-9A-Z]+$"))
    expect(page.get_by_role("status")).to_contain_text("诉求已受理")
    look(page, "desk-accepted")
    return code.inner_text()


def test_a_call_taken_at_the_desk_is_resolved_at_the_workbench_and_read_on_the_public_page(
    new_browser_page: Callable[[], Page], stack: Stack, people: dict[str, str], look: Look
) -> None:
    phone = f"138{uuid.uuid4().int % 10**8:08d}"

    # The clerk of A3-HOUSING is already looking at the queue when the call comes in.
    clerk = new_browser_page()
    sign_in(clerk, stack, people["housing"], look, landing="/console/queue")
    expect(clerk.get_by_role("heading", level=1)).to_have_text("待办队列：A3-HOUSING")
    look(clerk, "queue-before")
    clerk.evaluate("() => { window.stillTheSamePage = true; }")

    tracking = take_a_call(new_browser_page(), stack, people["operator"], phone, look)

    # The row appears through the page's server-sent events, without a reload.
    row_link = clerk.get_by_role("link", name=tracking, exact=True)
    expect(row_link).to_be_visible(timeout=ROUTING_TIMEOUT_MS)
    assert clerk.evaluate("() => window.stillTheSamePage === true"), "the queue page was reloaded"
    expect(clerk.locator("#live")).to_contain_text("队列已更新")
    expect(clerk.get_by_role("row").filter(has=row_link)).to_contain_text(TITLE)
    expect(clerk.locator("#queue")).not_to_contain_text(phone)
    look(clerk, "queue-after")

    row_link.click()
    expect(clerk).to_have_url(re.compile(r"/console/petitions/[^/?]+$"))
    petition_url = clerk.url
    expect(clerk.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(clerk.locator("main")).to_contain_text(CONTENT)
    for private in (phone, "王女士"):  # the petitioner's contacts are revealed on request, not shown
        expect(clerk.locator("main")).not_to_contain_text(private)
    look(clerk, "petition")

    clerk.get_by_role("button", name="签收").click()
    expect(clerk.get_by_role("status")).to_have_text("已提交：签收。")
    look(clerk, "petition-accepted")
    clerk.get_by_label("答复内容").fill(REPLY)
    clerk.get_by_role("button", name="办结").click()
    expect(clerk.get_by_role("status")).to_have_text("已提交：办结。")
    look(clerk, "petition-resolved")

    # A clerk of A3-URBAN: not in its queue, and the petition's page does not exist for it.
    stranger = new_browser_page()
    sign_in(stranger, stack, people["urban"], look, landing="/console/queue")
    expect(stranger.get_by_role("heading", level=1)).to_have_text("待办队列：A3-URBAN")
    expect(stranger.get_by_role("link", name=tracking, exact=True)).to_have_count(0)
    look(stranger, "other-queue")
    answer = stranger.goto(petition_url)
    assert answer is not None and answer.status == 404
    expect(stranger.get_by_role("heading", level=1)).to_have_text("出错了（404）")
    expect(stranger.get_by_role("alert")).to_have_text("没有找到这条诉求，或您无权查看。")
    look(stranger, "other-department-404")

    # The petitioner, with the tracking code the operator read out.
    citizen = new_browser_page()
    citizen.goto(f"{stack.base_url}/track")
    expect(citizen.get_by_role("heading", level=1)).to_have_text("诉求办理进度查询")
    look(citizen, "track")
    citizen.get_by_label("查询码").fill(tracking)
    citizen.get_by_role("button", name="查询").click()
    result = citizen.get_by_role("region", name="查询结果")
    deadline = time.monotonic() + 20  # the public page reads the read model, which may lag a moment
    while "已办结" not in citizen.locator("main").inner_text() and time.monotonic() < deadline:
        citizen.wait_for_timeout(500)
        citizen.reload()
    expect(result.locator(".status")).to_have_text("已办结")
    expect(result.locator(".reply")).to_have_text(REPLY)
    expect(result).to_contain_text("A3区住房和城乡建设局")
    expect(citizen.locator("main")).not_to_contain_text("王女士")
    look(citizen, "track-resolved")

    citizen.get_by_label("查询码").fill("XF-ZZZZZZZZZZ")
    with citizen.expect_response(lambda r: "/track?code=" in r.url) as unknown:
        citizen.get_by_label("查询码").press("Enter")
    assert unknown.value.status == 404
    expect(citizen.get_by_role("alert")).to_have_text("未查询到该查询码对应的诉求，请核对后重试。")
    look(citizen, "track-not-found")


def test_a_form_sent_without_its_csrf_token_is_refused(
    browser_page: Page, stack: Stack, people: dict[str, str], look: Look
) -> None:
    sign_in(browser_page, stack, people["operator"], look, landing="/console/desk")
    form = browser_page.locator("form#desk")
    expect(form.locator('input[name="csrf_token"]')).to_have_count(1)
    browser_page.evaluate("() => document.querySelector('form#desk input[name=csrf_token]').remove()")
    browser_page.get_by_label("标题").fill("无校验码的表单")
    browser_page.get_by_label("内容").fill("这份表单的校验码被删掉了。")
    sent = browser_page.expect_response(lambda r: r.url.endswith("/console/desk") and r.request.method == "POST")
    with sent as posted:
        browser_page.get_by_role("button", name="提交").click()
    assert posted.value.status == 403
    expect(browser_page.get_by_role("heading", level=1)).to_have_text("出错了（403）")
    expect(browser_page.get_by_role("alert")).to_contain_text("校验码")
    look(browser_page, "csrf-refused")


def _add(stack: Stack, username: str, *role: str) -> None:
    done = stack.petitionctl("users", "add", "--username", username, *role, "--password-stdin", input=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def test_the_desks_live_suggestion_the_search_the_supervisors_view_and_the_triage_desk(
    new_browser_page: Callable[[], Page], stack: Stack, people: dict[str, str], look: Look
) -> None:
    suffix = uuid.uuid4().hex[:6]
    _add(stack, f"sup-{suffix}", "--role", "supervisor", "--area", "A3")
    _add(stack, f"desk-{suffix}", "--role", "triage")

    # While the operator types, the router's suggestion appears beside the form.
    desk = new_browser_page()
    sign_in(desk, stack, people["operator"], look, landing="/console/desk")
    desk.get_by_label("标题").fill(TITLE)
    desk.get_by_label("内容").fill(CONTENT)
    expect(desk.locator("#suggestion-text")).to_contain_text("建议承办单位：A3区住房和城乡建设局", timeout=15_000)
    look(desk, "desk-suggestion")

    # The search by phone asks for a reason (it is audited).
    desk.get_by_role("link", name="诉求查询").click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("诉求查询")
    look(desk, "search")
    desk.get_by_label("来电号码").fill("13900000000")
    desk.get_by_label("查询事由").fill("来电人询问进度")
    desk.get_by_role("button", name="查询", exact=True).click()
    expect(desk.locator("main")).to_contain_text("该号码没有诉求记录")
    look(desk, "search-result")

    supervisor = new_browser_page()
    sign_in(supervisor, stack, f"sup-{suffix}", look, landing="/console/overview")
    for heading in ("即将超期与已超期", "督办", "各单位办理情况", "零报告"):
        expect(supervisor.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    look(supervisor, "overview")

    triage = new_browser_page()
    sign_in(triage, stack, f"desk-{suffix}", look, landing="/console/triage")
    expect(triage.get_by_role("heading", level=1)).to_have_text("分派台（TRIAGE）")
    look(triage, "triage")
