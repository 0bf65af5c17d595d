"""A message to the centre's mailbox, judged: a petition (its title, text and sender), or not.

Pure: the standard library's e-mail parser only. What is not a petition, and why:

* ``bounce``: a delivery report (``multipart/report``; a null envelope sender ``<>``, which
  RFC 5321 reserves for them; or a sender that is a mailer daemon / postmaster);
* ``auto_reply``: a message a machine wrote (RFC 3834 ``Auto-Submitted`` other than ``no``;
  ``X-Autoreply`` / ``X-Autorespond``; ``Precedence: bulk | junk | list | auto_reply``; a
  mailing list's ``List-Id``; a subject that says it is an automatic reply or out of office);
  answering it could start a loop of automatic replies;
* ``oversized``: over the size limit (the listener refuses those at ``DATA`` already);
* ``empty``: no text to act on (no text part, or only whitespace in it);
* ``unreadable``: no sender address to answer.

A petition's title is the subject (or, without one, the first line of the text), its content
the text part (``text/plain`` preferred; ``text/html`` reduced to its text), both cut to the
API's limits and cleaned of the characters the store refuses. The sender's address (and display
name) are the petitioner's contacts, kept in intake. ``Message-ID`` identifies the message:
the same message delivered twice is one petition; a message without one is identified by a
digest of its bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

__all__ = ["NotPetition", "Petition", "judge", "message_id"]

TITLE_MAX = 200
CONTENT_MAX = 20000
NAME_MAX = 50
_AUTO_SUBJECT = re.compile(r"^\s*(自动回复|自动答复|auto(matic)?[ -]?(reply|response)|auto:|out of office|"
                           r"undeliverable|delivery status notification|returned mail)", re.IGNORECASE)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster)$", re.IGNORECASE)
# what the store cannot keep (NUL, other C0 controls but tab and newlines, non-characters)
_FORBIDDEN = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufdd0-\ufdef\ufffe\uffff]")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True, slots=True)
class Petition:
    title: str
    content: str
    sender: str
    name: str | None
    message_id: str
    subject: str


@dataclass(frozen=True, slots=True)
class NotPetition:
    reason: str  # bounce, auto_reply, oversized, empty, unreadable


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _clean(text: str) -> str:
    text = _FORBIDDEN.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    # lone surrogates (a badly encoded part) cannot be stored either
    text = text.encode("utf-8", "replace").decode("utf-8")
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _body(message: EmailMessage) -> str | None:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError, KeyError):  # an unknown or broken charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return None
    return _html_text(content) if part.get_content_subtype() == "html" else content


def message_id(message: EmailMessage, raw: bytes) -> str:
    """The message's identity: its Message-ID, or a digest of its bytes."""
    given = str(message.get("Message-ID", "") or "").strip()
    if given and len(given) <= 200:
        return given
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _is_bounce(message: EmailMessage, mail_from: str) -> bool:
    if mail_from.strip() in ("", "<>"):
        return True
    if message.get_content_type() == "multipart/report":
        return True
    local = parseaddr(str(message.get("From", "")))[1].partition("@")[0]
    return _DAEMON.fullmatch(local) is not None


def _is_automatic(message: EmailMessage) -> bool:
    auto = str(message.get("Auto-Submitted", "") or "").strip().lower()
    if auto and auto != "no":
        return True
    if message.get("X-Autoreply") is not None or message.get("X-Autorespond") is not None:
        return True
    if str(message.get("Precedence", "") or "").strip().lower() in ("bulk", "junk", "list", "auto_reply"):
        return True
    if message.get("List-Id") is not None:
        return True
    return _AUTO_SUBJECT.match(str(message.get("Subject", "") or "")) is not None


def _sender(message: EmailMessage) -> tuple[str, str | None] | None:
    """Whom to answer (Reply-To, else From) and the display name of From."""
    for header in ("Reply-To", "From"):
        found = getaddresses([str(message.get(header, "") or "")])
        if found and found[0][1] and "@" in found[0][1]:
            address = found[0][1]
            name = parseaddr(str(message.get("From", "") or ""))[0].strip() or None
            try:
                Address(addr_spec=address)
            except (ValueError, IndexError):
                continue
            return address, name
    return None


def judge(message: EmailMessage, raw: bytes, *, mail_from: str, limit: int) -> Petition | NotPetition:
    """What a delivered message is (`raw`: its bytes as received; `mail_from`: the envelope
    sender)."""
    if len(raw) > limit:
        return NotPetition("oversized")
    if _is_bounce(message, mail_from):
        return NotPetition("bounce")
    if _is_automatic(message):
        return NotPetition("auto_reply")
    sender = _sender(message)
    if sender is None:
        return NotPetition("unreadable")
    body = _body(message)
    content = _clean(body or "")
    if not content:
        return NotPetition("empty")
    subject = _clean(str(message.get("Subject", "") or "")).replace("\n", " ")
    title = subject or content.split("\n", 1)[0]
    name = _clean(sender[1] or "").replace("\n", " ") or None
    if name is not None and len(name) > NAME_MAX:
        name = None
    return Petition(_cut(title, TITLE_MAX), _cut(content, CONTENT_MAX), sender[0], name, message_id(message, raw),
                    subject)
