"""The e-mail channel through the real stack: messages sent with smtplib to intake's listener
become petitions that are routed, each answered by an automatic reply with its tracking code;
the same message twice is one petition; what is not a petition is counted, never recorded."""

from __future__ import annotations

import mailbox
import re
import smtplib
import uuid
from email.message import EmailMessage

import httpx
import pytest

from shared.identity import Principal, Role
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.integration

CENTRE = "12345@petition.example.gov.cn"
CODE = re.compile(r"XF-[0-9A-Z]{10}")


def letter(body: str, *, subject: str = "A3区小区电梯长期停运", sender: str = "王小明 <wang@example.com>",
           **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, CENTRE, subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return m


def deliver(stack: Stack, m: EmailMessage, *, mail_from: str = "wang@example.com",
            to: str = CENTRE) -> tuple[int, str]:
    """The listener's answer to DATA (or to RCPT when it refuses the recipient)."""
    with smtplib.SMTP("127.0.0.1", stack.ports["PETITION_MAIL_PORT"], timeout=20) as smtp:
        smtp.ehlo("relay.test")
        smtp.mail(mail_from)
        code, text = smtp.rcpt(to)
        if code != 250:
            return code, text.decode()
        code, text = smtp.data(m.as_bytes(policy=m.policy.clone(linesep="\r\n")))  # as on the wire
        return code, text.decode()


def counted(client: httpx.Client, outcome: str) -> float:
    found = re.search(rf'^petition_mail_messages_total{{outcome="{outcome}"}} ([0-9.e+]+)$',
                      client.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def replies(stack: Stack) -> list[EmailMessage]:
    folder = stack.run_dir / "mail" / "outbox"
    if not (folder / "cur").exists():
        return []
    from email import policy
    from email.parser import BytesParser
    return [BytesParser(policy=policy.default).parsebytes(m.as_bytes()) for m in mailbox.Maildir(folder)]


def test_a_letter_becomes_a_routed_petition_and_its_sender_gets_the_tracking_code(
    client: httpx.Client, stack: Stack
) -> None:
    m = letter("我住在A市A3区某小区，小区电梯停运一个多月，物业一直不修，老人上下楼很困难，请住建部门督促物业维修。")
    code, text = deliver(stack, m)
    assert code == 250, text
    tracking = CODE.search(text)
    assert tracking, text
    petition = wait_for(lambda: (b := client.get(f"/v1/petitions/{tracking.group(0)}").json()).get("department")
                        and b, timeout=30)
    # routed like any petition (which department is the router's decision), in the district named
    assert petition["channel"] == "letter" and petition["department"]["code"].startswith("A3-")
    assert petition["title"] == "A3区小区电梯长期停运"
    assert "wang@example.com" not in str(petition)
    holder = petition["department"]["code"]
    clerk = stack.token(Principal(f"clerk-{holder}", Role.DEPARTMENT, frozenset({holder})))
    contacts = httpx.post(f"{stack.base_url}/v1/petitions/{petition['id']}/contacts", json={"reason": "回复来信人"},
                          headers={"Authorization": f"Bearer {clerk}"}, timeout=10)
    assert contacts.status_code == 200 and contacts.json()["email"] == "wang@example.com", contacts.text

    reply = wait_for(lambda: next((r for r in replies(stack) if r["In-Reply-To"] == m["Message-ID"]), None))
    assert reply["To"] == "wang@example.com" and reply["Auto-Submitted"] == "auto-replied"
    assert tracking.group(0) in str(reply["Subject"]) and tracking.group(0) in reply.get_content()

    # the relay delivers it again: the same petition, no second reply
    again = deliver(stack, m)
    assert again[0] == 250 and tracking.group(0) in again[1]
    assert len([r for r in replies(stack) if r["In-Reply-To"] == m["Message-ID"]]) == 1


def test_what_is_not_a_petition_is_counted_and_never_recorded(client: httpx.Client, stack: Stack) -> None:
    before = {o: counted(client, o) for o in ("bounce", "auto_reply", "empty", "oversized")}
    cases = [
        ("bounce", letter("Delivery to the following recipient failed"), ""),
        ("auto_reply", letter("我正在休假，下周一回来。", subject="自动回复：休假中", Auto_Submitted="auto-replied"),
         "wang@example.com"),
        ("empty", letter("  \n"), "wang@example.com"),
    ]
    for outcome, m, mail_from in cases:
        code, text = deliver(stack, m, mail_from=mail_from)
        assert code == 250 and "not recorded" in text and outcome in text and not CODE.search(text), (outcome, text)
    code, text = deliver(stack, letter(("长" * 60 + "\n") * 3500))  # 630 KB of text, over the test stack's 512 KiB
    assert code == 552, text
    after = {o: counted(client, o) for o in before}
    assert all(after[o] == before[o] + 1 for o in before), (before, after)

    code, text = deliver(stack, letter("转给别人"), to="someone@elsewhere.example")
    assert code == 550, text
