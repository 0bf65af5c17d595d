"""`make up`'s helpers: waits only as long as each part deserves, and petitionctl's
migrations step finds the same folders as the services without importing them."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deploy.stack import ServiceProcess, free_ports, wait_all_ready

REPO = Path(__file__).resolve().parents[2]


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_wait_all_ready_polls_together_and_gives_a_running_part_only_its_grace() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    (dead,) = free_ports(1)
    try:
        started = time.monotonic()
        ready = wait_all_ready({
            "ready": (f"http://127.0.0.1:{port}/readyz", 30, None),
            "unready": (f"http://127.0.0.1:{port}/other", 0.5, None),
            "dead": (f"http://127.0.0.1:{dead}/readyz", 0.5, None),
        })
        assert ready == {"ready": True, "unready": False, "dead": False}
        assert time.monotonic() - started < 5  # the short graces, not the 30 s one
    finally:
        server.shutdown()


def test_wait_all_ready_gives_up_on_a_process_that_died() -> None:
    (port,) = free_ports(1)
    proc = ServiceProcess("quitter", [sys.executable, "-c", "pass"], run_dir=Path("/tmp") / "ls-test")
    proc.start()
    started = time.monotonic()
    assert wait_all_ready({"quitter": (f"http://127.0.0.1:{port}/readyz", 60, proc)}) == {"quitter": False}
    assert time.monotonic() - started < 10


def test_db_migrate_does_not_import_the_services() -> None:
    code = (
        "import sys, petitionctl.cli as c, argparse\n"
        "import shared.db\n"
        "shared.db.migrate = None\n"  # never reached: no database is given
        "try:\n    c._db_migrate(argparse.Namespace(dsn='postgresql://x@127.0.0.1:1/x'))\n"
        "except Exception:\n    pass\n"
        "print(any(m.startswith(('faust', 'services.router.app', 'fastapi')) for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


def test_up_prints_a_token_command_for_the_run_folder_intake_uses() -> None:
    from deploy.stack.cli import token_command
    from deploy.stack.config import StackConfig

    assert token_command(StackConfig.from_env({})) == \
        "TOKEN=$(.venv/bin/petitionctl token issue --subject op-001 --role operator)"
    assert token_command(StackConfig.from_env({"PETITION_RUN_DIR": "/srv/petitions"})).startswith(
        "TOKEN=$(PETITION_RUN_DIR=/srv/petitions .venv/bin/petitionctl token issue")
