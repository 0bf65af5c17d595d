"""Where the reference data files are, and reading them into the shared reference objects.

The files belong to the service that maintains them (the routing table and the gazetteer to
the router, the ladder and the zero-report obligations to the escalation service); every
service that checks against them reads them with the code here, so a file means the same
everywhere. Each path can be moved by its environment variable (``PETITION_ROUTING_TABLE_PATH``
and ``PETITION_GAZETTEER_PATH``; ``PETITION_ESCALATION_LADDER_PATH`` and
``PETITION_ESCALATION_OBLIGATIONS_PATH``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.reference.directory import Directory
from shared.reference.places import Gazetteer

__all__ = [
    "GAZETTEER",
    "LADDER",
    "OBLIGATIONS",
    "ROUTING",
    "DirectoryFiles",
    "EscalationFiles",
    "load_directory",
]

_SERVICES = Path(__file__).resolve().parents[2] / "services"
#: the routing table and the gazetteer (maintained with the router)
ROUTING = _SERVICES / "router" / "data" / "routing.yaml"
GAZETTEER = _SERVICES / "router" / "data" / "gazetteer.yaml"
#: the escalation ladder and the zero-report obligations (maintained with the escalation service)
LADDER = _SERVICES / "escalation" / "data" / "ladder.yaml"
OBLIGATIONS = _SERVICES / "escalation" / "data" / "zero-report-obligations.yaml"


class EscalationFiles(BaseSettings):
    """The escalation service's data files, from the variables that service reads."""

    model_config = SettingsConfigDict(env_prefix="PETITION_ESCALATION_", extra="ignore", frozen=True)

    ladder_path: Path = LADDER
    obligations_path: Path = OBLIGATIONS


@dataclass(frozen=True, slots=True)
class DirectoryFiles:
    """What the routing table file and the gazetteer say, parsed, with their version (a hash
    of both files' bytes: the routing table's version)."""

    version: str
    gazetteer: Gazetteer
    directory: Directory
    routing_data: object


def load_directory(routing_path: Path | None = None, gazetteer_path: Path | None = None) -> DirectoryFiles:
    """Read and check both files; raises (ValueError, OSError, a YAML error) when one does not
    load, so a caller reloading them keeps what is in force."""
    routing_bytes = (routing_path or ROUTING).read_bytes()
    gazetteer_bytes = (gazetteer_path or GAZETTEER).read_bytes()
    version = hashlib.sha256(routing_bytes + b"\0" + gazetteer_bytes).hexdigest()[:12]
    gazetteer = Gazetteer.from_data(yaml.safe_load(gazetteer_bytes))
    routing_data = yaml.safe_load(routing_bytes)
    return DirectoryFiles(version, gazetteer, Directory.from_data(routing_data, gazetteer), routing_data)
