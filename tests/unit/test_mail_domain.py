"""What a message to the centre's mailbox is (services/intake/domain/mail.py), without a server."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from services.intake.domain.mail import NotPetition, Petition, judge

LIMIT = 1 << 20


def message(body: str | None = "A3区某路段路灯坏了半个月，晚上很黑，请尽快维修。", *, subject: str = "路灯不亮",
            html: str | None = None, **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = headers.pop("From", "王小明 <wang@example.com>")
    m["To"] = "12345@petition.example.gov.cn"
    if subject:
        m["Subject"] = subject
    m["Message-ID"] = headers.pop("Message_ID", "<m1@example.com>")
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    if body is not None:
        m.set_content(body)
    if html is not None:
        if body is None:
            m.set_content(html, subtype="html")
        else:
            m.add_alternative(html, subtype="html")
    return m


def verdict(m: EmailMessage, mail_from: str = "wang@example.com") -> Petition | NotPetition:
    raw = m.as_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    return judge(parsed, raw, mail_from=mail_from, limit=LIMIT)


def test_a_plain_letter_is_a_petition_with_its_sender_kept() -> None:
    found = verdict(message())
    assert isinstance(found, Petition)
    assert (found.title, found.sender, found.name, found.message_id) == (
        "路灯不亮", "wang@example.com", "王小明", "<m1@example.com>")
    assert "路灯坏了半个月" in found.content


def test_reply_to_is_whom_to_answer_and_html_is_read_as_text() -> None:
    found = verdict(message(None, html="<p>噪音<b>扰民</b></p><script>x()</script><br>夜里施工",
                            Reply_To="reply@example.org"))
    assert isinstance(found, Petition)
    assert found.sender == "reply@example.org"
    assert "噪音扰民" in found.content and "夜里施工" in found.content and "x()" not in found.content


def test_without_a_subject_the_first_line_is_the_title_and_gbk_is_decoded() -> None:
    m = EmailMessage()
    m["From"] = "li@example.com"
    m["Message-ID"] = "<gbk@example.com>"
    m.set_content("小区门口垃圾堆积\n已经一周没人清运", charset="gbk")
    found = verdict(m)
    assert isinstance(found, Petition)
    assert found.title == "小区门口垃圾堆积" and "一周没人清运" in found.content


@pytest.mark.parametrize(("m", "mail_from", "reason"), [
    (message(), "", "bounce"),
    (message(), "<>", "bounce"),
    (message(From="MAILER-DAEMON@mx.example.com"), "x@example.com", "bounce"),
    (message(Auto_Submitted="auto-replied"), "wang@example.com", "auto_reply"),
    (message(Precedence="bulk"), "wang@example.com", "auto_reply"),
    (message(X_Autoreply="yes"), "wang@example.com", "auto_reply"),
    (message(List_Id="<news.example.com>"), "wang@example.com", "auto_reply"),
    (message(subject="自动回复：我正在休假"), "wang@example.com", "auto_reply"),
    (message(subject="Out of Office: back Monday"), "wang@example.com", "auto_reply"),
    (message("   \n\t\n"), "wang@example.com", "empty"),
    (message(None), "wang@example.com", "empty"),
    (message(From="nobody"), "wang@example.com", "unreadable"),
    (message("长" * (LIMIT // 2)), "wang@example.com", "oversized"),
])
def test_what_is_not_a_petition(m: EmailMessage, mail_from: str, reason: str) -> None:
    assert verdict(m, mail_from) == NotPetition(reason)


def test_auto_submitted_no_is_a_person_writing() -> None:
    assert isinstance(verdict(message(Auto_Submitted="no")), Petition)


def test_a_report_is_a_bounce_whatever_its_sender() -> None:
    m = message()
    m.make_mixed()
    m.replace_header("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"')
    assert verdict(m) == NotPetition("bounce")


def test_without_a_message_id_the_bytes_identify_it_and_what_the_store_refuses_is_removed() -> None:
    m = message("积水\x00严重\x07，请处理")
    del m["Message-ID"]
    found = verdict(m)
    assert isinstance(found, Petition)
    assert found.message_id.startswith("sha256:") and found.content == "积水严重，请处理"
    assert verdict(m) == found  # the same bytes, the same identity
