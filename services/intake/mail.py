"""The e-mail channel: an SMTP listener (aiosmtpd) the centre's mail relay forwards into.

A message to the centre's address (``PETITION_MAIL_ADDRESS``; any other recipient is refused at
``RCPT``) is judged by :mod:`services.intake.domain.mail`. A petition goes through the same
service layer as the JSON API (:func:`services.intake.handlers.submit_petition`: validated,
durable with its outbox row before the listener answers ``250``), by the channel
``PETITION_MAIL_CHANNEL`` (``letter`` or ``online``), in the name of ``mail:<centre address>``,
its Message-ID as the idempotency key: the same message delivered twice is one petition (and
one automatic reply). The sender's address and name are kept in intake as the petitioner's
contacts. The ``250`` answer names the tracking code; the sender gets it in an automatic reply
(RFC 3834: ``Auto-Submitted: auto-replied``, ``In-Reply-To``), sent after the commit through
``PETITION_MAIL_RELAY`` (``host:port``) or, without a relay, written to the Maildir
``PETITION_MAIL_OUTBOX`` (default ``<run dir>/mail/outbox``) for the centre's mail system to pick
up.

Not petitions (a bounce, an automatic reply, an empty message) are accepted (``250``: the relay
must not retry them) and counted, never recorded; an oversized one is refused with ``552`` at
``DATA`` (the limit is advertised with ``SIZE``) and counted. While the database is down the
answer is ``451`` (try again later): the relay keeps the message and retries, nothing is lost.
A message the API's validation refuses is answered ``554``, so that the relay returns it to its
sender. ``petition_mail_messages_total{outcome}`` counts every outcome.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from services.intake import handlers, metrics
from services.intake.commands import Origin, PetitionIn
from services.intake.domain.mail import NotPetition, Petition, judge
from services.intake.store import IntakeStore
from shared.errors import BadInput, Conflict, PetitionError, Unavailable
from shared.events import utcnow
from shared.identity import Principal, Role
from shared.outages import is_transient
from shared.store import UnitOfWork

__all__ = ["MailIntake", "MailSettings", "start_listener"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailSettings:
    address: str
    channel: str
    max_bytes: int
    relay: str  # host:port, or "" for the outbox folder
    outbox: Path
    hostname: str = "petition-intake"


class _Listener(SMTP):
    """aiosmtpd's SMTP, counting what it refuses itself (a message over the size limit)."""

    async def push(self, status: Any) -> None:
        if (status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)).startswith("552"):
            metrics.MAIL.labels("oversized").inc()
        await super().push(status)


def _reply(settings: MailSettings, petition: Petition, tracking_code: str) -> EmailMessage:
    reply = EmailMessage()
    reply["From"] = settings.address
    reply["To"] = petition.sender
    reply["Subject"] = f"[{tracking_code}] 已收到您的来信：{petition.subject or petition.title}"[:200]
    reply["Date"] = formatdate(localtime=True)
    reply["Message-ID"] = make_msgid(domain=settings.address.partition("@")[2] or None)
    reply["In-Reply-To"] = petition.message_id
    reply["References"] = petition.message_id
    reply["Auto-Submitted"] = "auto-replied"  # RFC 3834: an automatic reply, never to be answered by one
    reply.set_content(
        "您好：\n\n您的来信已收到并登记，查询码为 " + tracking_code + "。\n"
        "我们将按规定转交承办单位办理，您可凭查询码在公开查询页面（/track）查询办理进度与答复。\n\n"
        "本邮件由系统自动发送，请勿直接回复。\n" + settings.address + "\n"
    )
    return reply


class MailIntake:
    """The listener's handler (aiosmtpd's ``handle_RCPT`` / ``handle_DATA``)."""

    def __init__(self, uow: Callable[[], UnitOfWork[IntakeStore]], ctx: handlers.Intake,
                 settings: MailSettings) -> None:
        self.uow, self.ctx, self.settings = uow, ctx, settings
        self.principal = Principal(f"mail:{settings.address}", Role.OPERATOR)
        self._replies: set[asyncio.Task[None]] = set()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.strip().lower() != self.settings.address.lower():
            return f"550 5.1.1 <{address}>: this server takes mail for {self.settings.address} only"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", "replace")
        try:
            message = BytesParser(policy=policy.default).parsebytes(raw)
            verdict = judge(message, raw, mail_from=envelope.mail_from or "", limit=self.settings.max_bytes)
        except Exception:  # a message the parser chokes on is not a petition; say so, keep serving
            log.warning("an unreadable message from %s", envelope.mail_from, exc_info=True)
            verdict = NotPetition("unreadable")
        if isinstance(verdict, NotPetition):
            metrics.MAIL.labels(verdict.reason).inc()
            if verdict.reason == "oversized":
                return "552 5.3.4 message too big for the centre's mailbox"
            return f"250 2.0.0 OK, not recorded as a petition ({verdict.reason})"
        return await self._record(verdict)

    async def _record(self, petition: Petition) -> str:
        person: dict[str, Any] = {"email": petition.sender}
        if petition.name:
            person["name"] = petition.name
        try:
            body = PetitionIn.model_validate({"title": petition.title, "content": petition.content,
                                              "channel": self.settings.channel, "petitioner": person})
        except ValueError:
            try:  # the sender's name or address is what the API refuses: keep the text, drop them
                body = PetitionIn.model_validate({"title": petition.title, "content": petition.content,
                                                  "channel": self.settings.channel})
            except ValueError as exc:
                metrics.MAIL.labels("refused").inc()
                return f"554 5.6.0 the message cannot be taken as a petition: {str(exc).splitlines()[0]}"
        try:
            accepted, new = await handlers.submit_petition(
                self.uow(), self.ctx, self.principal, body, idempotency_key=f"mail:{petition.message_id}",
                now=utcnow(), origin=Origin("mail"),
            )
        except Unavailable:
            metrics.MAIL.labels("failed").inc()
            return "451 4.3.0 the centre cannot record mail just now; try again later"
        except (BadInput, Conflict) as exc:
            metrics.MAIL.labels("refused").inc()
            return f"554 5.6.0 the message cannot be taken as a petition: {exc.message}"
        except PetitionError:
            raise
        except Exception as exc:
            if is_transient(exc):
                metrics.MAIL.labels("failed").inc()
                return "451 4.3.0 the centre cannot record mail just now; try again later"
            raise
        metrics.MAIL.labels("petition" if new else "duplicate").inc()
        if new:
            task = asyncio.create_task(self._send_reply(petition, accepted.tracking_code))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
        return f"250 2.0.0 OK, recorded as petition {accepted.tracking_code}"

    async def _send_reply(self, petition: Petition, tracking_code: str) -> None:
        reply = _reply(self.settings, petition, tracking_code)
        for attempt in range(5):
            try:
                await asyncio.to_thread(self._deliver, reply)
                metrics.MAIL_REPLIES.labels("sent").inc()
                return
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("automatic reply to %s not sent (attempt %d): %s", tracking_code, attempt + 1, exc)
                await asyncio.sleep(2 ** attempt)
        metrics.MAIL_REPLIES.labels("failed").inc()

    def _deliver(self, reply: EmailMessage) -> None:
        if self.settings.relay:
            host, _, port = self.settings.relay.rpartition(":")
            with smtplib.SMTP(host or "127.0.0.1", int(port), timeout=10) as relay:
                relay.send_message(reply, from_addr="")  # a null sender: nothing answers an automatic reply
        else:
            # made here, each folder whether or not another worker is making it at the same
            # moment (Maildir's own create would fail in the second); one made by hand may lack some
            self.settings.outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
            for part in ("tmp", "new", "cur"):
                (self.settings.outbox / part).mkdir(mode=0o700, exist_ok=True)
            mailbox.Maildir(self.settings.outbox, create=False).add(reply)

    async def drain(self, timeout: float = 5.0) -> None:
        if self._replies:
            await asyncio.wait(set(self._replies), timeout=timeout)


async def start_listener(handler: MailIntake, host: str, port: int, *, reuse_port: bool = False) -> asyncio.Server:
    """Listen for SMTP on host:port (one SMTP session per connection); with `reuse_port`, on a
    port several intake workers listen on (``SO_REUSEPORT``: the kernel spreads the relay's
    connections over them)."""
    loop = asyncio.get_running_loop()
    settings = handler.settings
    return await loop.create_server(
        lambda: _Listener(handler, data_size_limit=settings.max_bytes, enable_SMTPUTF8=True,
                          hostname=settings.hostname, ident="petition intake"),
        host=host, port=port, reuse_port=reuse_port,
    )
