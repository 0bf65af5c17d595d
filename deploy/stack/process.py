"""Processes of the local stack: commands, detached servers, PID files, ports, signals.

Every long-running part (Kafka, Prometheus, the services) is started detached in its own
session and recorded in a PID file, so ``make down`` stops exactly what ``make up`` started,
also from another shell, and Ctrl-C in the shell that ran ``make up`` takes nothing down.
What must hold:

* a PID is signalled only when /proc/<pid>/cmdline is the argv we started, so a stale PID
  file never kills a stranger that reused the number;
* a stop reaches the whole process group (a service's worker and relay processes too);
* only the standard library is imported, so ``make down`` / ``make status`` run with the
  system Python before any venv exists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class StackError(RuntimeError):
    """A part of the local stack could not be installed, started or reached."""


def log(msg: str) -> None:
    """Progress messages go to stderr so stdout stays clean for the summary table."""
    print(f"[localstack] {msg}", file=sys.stderr, flush=True)


def is_root() -> bool:
    return os.geteuid() == 0


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """Ask the kernel for `count` distinct free ports (bind to port 0).

    All sockets stay open until every port is chosen so the same port is never handed
    out twice; there is an unavoidable small race between closing and the server binding.
    """
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages (empty string if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie.

    A child we started in this Python process shows up as a zombie after it died until
    it is reaped; treating zombies as dead keeps is_running()/stop() honest in tests.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def proc_cmdline(pid: int) -> list[str] | None:
    """argv of a running process from /proc, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.rstrip(b"\0").decode("utf-8", "replace").split("\0")


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run_command(argv: Sequence[str], *, check: bool = True, env: Mapping[str, str] | None = None,
         timeout: float | None = 600, log_file: Path | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a short-lived command, capturing output (or appending it to `log_file`).

    `log_file` matters for commands that leave a daemon behind (pg_ctl start): a daemon
    inheriting our capture pipe would make us wait forever for EOF.
    """
    proc: subprocess.CompletedProcess[Any]
    if log_file is not None:
        with open(log_file, "ab") as out:
            proc = subprocess.run(list(argv), check=False, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, env=dict(env) if env else None,
                                  timeout=timeout, cwd=cwd)
        output = tail(log_file, 30)
    else:
        proc = subprocess.run(list(argv), check=False, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, env=dict(env) if env else None, timeout=timeout,
                              cwd=cwd)
        output = (proc.stdout or "") + (proc.stderr or "")
    if check and proc.returncode != 0:
        raise StackError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{output}")
    proc.output = output  # type: ignore[union-attr]  # callers read the combined output here
    return proc


class ServiceProcess:
    """A long-running process started detached, tracked by a PID file.

    stdout+stderr are appended to ``<run_dir>/logs/<name>.log``, the PID is written to
    ``<run_dir>/pids/<name>.pid``. The process gets its own session (process group) so
    ``stop()`` can signal it together with any children, and so Ctrl-C in the shell that
    ran ``make up`` does not take it down.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 run_dir: Path | str = ".", cwd: Path | str | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = dict(env) if env is not None else None
        self.run_dir = Path(run_dir)
        self.cwd = Path(cwd) if cwd is not None else None
        self.log_file = self.run_dir / "logs" / f"{name}.log"
        self.pid_file = self.run_dir / "pids" / f"{name}.pid"
        self._popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """PID from the PID file if that process is alive and is really ours."""
        pid = read_pid_file(self.pid_file)
        if pid is None or not pid_alive(pid):
            return None
        # A reused PID belongs to a stranger: its argv will differ from ours.
        if proc_cmdline(pid) != self.argv:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self) -> int:
        """Start the process unless it already runs; returns its PID."""
        existing = self.pid
        if existing is not None:
            return existing
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting "
                      f"{' '.join(self.argv)}\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True, close_fds=True)
        self.pid_file.write_text(f"{self._popen.pid}\n")
        return self._popen.pid

    def exited(self) -> bool:
        """True when a process started by this object has already died."""
        if self._popen is not None:
            return self._popen.poll() is not None
        return not self.is_running()

    def _reap(self) -> None:
        if self._popen is not None:
            self._popen.poll()

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, wait up to `timeout`, then SIGKILL.

        Returns True when something was stopped. The PID file is removed either way.
        """
        pid = self.pid
        stopped = False
        if pid is not None:
            stopped = True
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._reap()
                if not pid_alive(pid):
                    break
                time.sleep(0.1)
            else:
                log(f"{self.name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; SIGKILL")
                _signal_group(pid, signal.SIGKILL)
                for _ in range(50):
                    self._reap()
                    if not pid_alive(pid):
                        break
                    time.sleep(0.1)
            # Children left in the group (the leader is gone) get no second chance.
            _signal_group(pid, signal.SIGKILL)
        self._reap()
        self.pid_file.unlink(missing_ok=True)
        return stopped


def _signal_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; a group that no longer exists is fine.

    Safe against PID reuse: Linux never hands out a PID that is still in use as a
    process group id, and callers only pass the PID of a verified leader.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
