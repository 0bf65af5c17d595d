"""Intake as several worker processes serving the HTTP API on its one port.

``PETITION_INTAKE_WORKER`` says which worker this process is (``make up`` runs
``PETITION_INTAKE_WORKERS`` of them, numbered from 1); 0, the default, is intake alone, which
binds ``PETITION_HTTP_PORT`` as it always did. A worker:

* serves the API on ``PETITION_HTTP_PORT`` together with the others: its socket is bound with
  ``SO_REUSEPORT``, so the kernel spreads new connections over the workers that listen, and a
  worker that dies leaves the port served by the others (the connections it held, and those
  waiting in its accept queue, are reset: a client retries them, with the same
  ``Idempotency-Key`` for a submission);
* listens alone on ``PETITION_INTAKE_WORKER_PORT``, its private port: the same app, there for
  what is per process (``/readyz`` of this worker, ``/metrics``, which Prometheus scrapes on
  every worker's private port);
* joins the read model's consumer group under an id of its own (:func:`consumer_instance_id`);
* runs the outbox relay like every worker (one relay per schema publishes at a time: an
  advisory lock) and the SMTP listener like every worker (bound with ``SO_REUSEPORT`` too);
* runs the consumer-lag collector only if it is worker 1 (:func:`runs_lag_collector`): the
  numbers are the broker's, the same from any worker.

Both sockets are bound before the app starts and not listened on: uvicorn listens once the
app's start-up (migrations, pools) is done, so the kernel hands a starting worker no
connection it could not answer yet.
"""

from __future__ import annotations

import socket

from shared.consumer import group_instance_id
from shared.settings import Settings

__all__ = ["api_sockets", "bind", "consumer_instance_id", "runs_lag_collector"]


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to host:port, not listening yet; with `reuse_port`, one of a group of
    sockets on that port (``SO_REUSEPORT``: every one of them must set it, and be of one user)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def api_sockets(settings: Settings) -> list[socket.socket] | None:
    """The sockets a worker serves on: the API's port, shared, and its private port. None for
    intake alone (uvicorn binds the API's port itself). Fails (OSError) when either is taken
    by a process that does not share it: the private port by another worker of the same
    number, the API's port by an intake that runs alone."""
    if not settings.intake_worker:
        return None
    shared = bind(settings.http_host, settings.http_port, reuse_port=True)
    try:
        private = bind(settings.http_host, settings.intake_worker_port, reuse_port=False)
    except BaseException:
        shared.close()
        raise
    return [shared, private]


def consumer_instance_id(settings: Settings) -> str:
    """The read model's static member id (``group.instance.id``): intake alone keeps the one it
    always had (``PETITION_INSTANCE_ID``, else service, host and API port); a worker's differs
    from every other worker's: the configured id with ``-worker-<n>`` after it (the same
    ``PETITION_INSTANCE_ID`` given to every worker of a host must not fence them), else
    service, host and its private port."""
    if not settings.intake_worker:
        return group_instance_id("intake", settings.http_port, settings.instance_id)
    if settings.instance_id:
        return f"{settings.instance_id}-worker-{settings.intake_worker}"
    return group_instance_id("intake", settings.intake_worker_port)


def runs_lag_collector(settings: Settings) -> bool:
    """Whether this process collects the consumer lag: intake alone, or worker 1 of several
    (one collector suffices; N would ask the broker the same N times)."""
    return settings.intake_worker <= 1
