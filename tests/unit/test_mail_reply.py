"""The automatic reply through a relay: an SMTP sink (aiosmtpd) stands for the centre's relay."""

from __future__ import annotations

import asyncio
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, cast

from aiosmtpd.controller import Controller

from deploy.stack.process import free_ports
from services.intake import handlers
from services.intake.domain.mail import Petition
from services.intake.mail import MailIntake, MailSettings


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, envelope.original_content))
        return "250 OK"


def test_the_reply_goes_through_the_relay_from_a_null_sender(tmp_path: Path) -> None:
    sink = Sink()
    port = free_ports(1)[0]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = MailSettings("12345@petition.example.gov.cn", "letter", 1 << 20, f"127.0.0.1:{port}",
                                tmp_path / "outbox")
        mail = MailIntake(lambda: cast(Any, None), cast(handlers.Intake, None), settings)
        petition = Petition("路灯不亮", "路灯坏了", "wang@example.com", "王小明", "<m1@example.com>", "路灯不亮")
        asyncio.run(mail._send_reply(petition, "XF-ABCDEFGHJK"))
    finally:
        controller.stop()
    assert len(sink.received) == 1
    mail_from, raw = sink.received[0]
    assert mail_from == "<>"  # a null sender: nothing answers an automatic reply
    reply = BytesParser(policy=policy.default).parsebytes(raw)
    assert reply["To"] == "wang@example.com" and reply["In-Reply-To"] == "<m1@example.com>"
    assert reply["Auto-Submitted"] == "auto-replied" and "XF-ABCDEFGHJK" in reply.get_content()
    assert not (tmp_path / "outbox").exists()  # with a relay, nothing is left in the folder
