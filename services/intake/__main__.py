"""``python -m services.intake``: run the HTTP API with its relay and read model.

Alone (``PETITION_INTAKE_WORKER`` 0), uvicorn binds ``PETITION_HTTP_PORT``; as one of several
workers, it serves the sockets :func:`services.intake.workers.api_sockets` bound: the API's
port, shared with the other workers, and this worker's private port.
"""

import contextlib
import logging
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from services.intake.app import create_app
from services.intake.workers import api_sockets
from shared.settings import load_settings

log = logging.getLogger("services.intake")


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        sockets = api_sockets(settings)
    except OSError as exc:
        log.error("intake worker %d: cannot bind %s:%d (shared) and port %d (its own): %s; an intake running"
                  " alone holds the API's port, or a worker %d runs already (make down, then make up)",
                  settings.intake_worker, settings.http_host, settings.http_port, settings.intake_worker_port, exc,
                  settings.intake_worker)
        sys.exit(STARTUP_FAILURE)
    if sockets is not None:
        log.info("intake worker %d: the API on %s:%d (with the other workers), this worker alone on port %d",
                 settings.intake_worker, settings.http_host, settings.http_port, settings.intake_worker_port)
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    ))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run answers a failed start-up


if __name__ == "__main__":
    main()
