"""Warm kernels: every student's kernel forked from one process that has already imported the kit.

    python helpers/grade/warm.py serve SOCKET              the zygote: imports torch, transformers, the kit,
                                                           ipykernel, then forks one kernel per request
    python helpers/grade/warm.py stub SOCKET -f CONN.json  the kernel jupyter_client starts (the kernelspec's
                                                           argv): asks the zygote for a kernel, lives as long
                                                           as that kernel does
    Zygote(env, root).start() / .spec_dir / .stop()        for helpers.grade.pool

Importing torch, transformers and the kit takes 10-40 s of CPU on a course machine, before a notebook's first
check; a fork takes milliseconds. Each forked kernel is still a process of its own (its own memory, copied on
write; its own session and process group, so killing it kills whatever it started): a student's changes to a
module, the model or os.environ stay in that process.

The stub and its kernel are tied by a socket: the kernel dies when the stub is killed (jupyter_client's
shutdown, the grader's kill), and the stub exits when the kernel does (so jupyter_client sees a dead kernel).
Each kernel writes its process group id to $KIT_GRADE_PIDS, which the grader kills when the notebook ends.
The kernel gets the stub's environment and working folder, fresh random seeds (numpy's and Python's; torch's
default seed is fixed in a fresh interpreter too), and SIGCHLD back at its default. If the zygote cannot be
reached, the stub runs an ordinary ipykernel instead (slower, same result).

This file imports nothing heavy at the top (the stub must start in milliseconds): the zygote imports PRELOAD
with importlib, and the kernel finds them imported.
"""
from __future__ import annotations

import importlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

SPEC_NAME = "kit-grade-warm"
PIDS_VAR = "KIT_GRADE_PIDS"
PRELOAD = ("numpy", "scipy.stats", "statsmodels.stats.multitest", "torch", "transformers", "matplotlib",
           "matplotlib.pyplot", "helpers", "helpers.check", "helpers.controls", "ipykernel.kernelapp",
           "ipykernel.ipkernel", "IPython")


def _send(sock, obj) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv(sock):
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    n, data = struct.unpack("!I", head)[0], b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


# --- the kernel (in the forked child) ---------------------------------------------------------------------

def _watch(conn) -> None:
    """In the kernel: block on the stub's socket; when the stub is gone, end this kernel's process group."""
    try:
        while conn.recv(1024):
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)


def _become_kernel(conn, request: dict) -> None:
    """The forked child: this request's environment and folder, then an IPython kernel on its connection file."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    random.seed()
    try:
        importlib.import_module("numpy").random.seed()    # (imported already: the zygote preloads it)
    except Exception:  # noqa: BLE001
        pass
    pids = os.environ.get(PIDS_VAR)
    if pids:
        with open(pids, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    _send(conn, {"pid": os.getpid()})
    threading.Thread(target=_watch, args=(conn,), daemon=True).start()
    sys.argv = ["ipykernel_launcher", *request["argv"]]
    sys.path.insert(0, "")                          # as `python -m ipykernel_launcher` has it: the cwd first
    importlib.import_module("ipykernel.kernelapp").IPKernelApp.launch_instance(argv=request["argv"])
    os._exit(0)


def serve(path: str) -> None:
    """The zygote: import what every kernel needs, then fork a kernel for each stub that connects."""
    here = Path(__file__).resolve().parent          # run by path: its folder is sys.path[0], not the kernel's
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != here]
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  a module the kit does not need here: the kernel imports it if asked
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)          # forked kernels are reaped as they end
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path + ".tmp")
    server.listen(64)
    os.replace(path + ".tmp", path)                         # the socket appears once the zygote is ready
    while True:
        conn, _ = server.accept()
        try:
            request = _recv(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        if not request:
            conn.close()
            continue
        if request.get("stop"):
            break
        if os.fork() == 0:
            server.close()
            try:
                _become_kernel(conn, request)
            finally:
                os._exit(1)
        conn.close()
    server.close()


# --- the stub (what jupyter_client starts) -------------------------------------------------------------------

def stub(path: str, argv: list[str]) -> int:
    """Ask the zygote for a kernel on this connection file; wait while it lives. Fallback: a cold ipykernel."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        _send(sock, {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()})
        reply = _recv(sock)
        if reply is None:
            raise OSError("the zygote gave no kernel")
    except OSError:
        sock.close()
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])
    pid = reply["pid"]

    def forward(signum, frame):                     # jupyter_client interrupts the stub: pass it on
        try:
            os.kill(pid, signum)
        except OSError:
            pass
    def end(signum, frame):                         # asked to stop: the kernel (and its group) goes too
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, end)
    try:
        while sock.recv(1024):
            pass
    except OSError:
        pass
    return 0


class Zygote:
    """The zygote process of one grading run, and the kernelspec folder whose kernel forks from it."""

    def __init__(self, env: dict, root: Path):
        self.env, self.root = env, Path(root)
        self.socket = str(self.root / "zygote.sock")
        self.spec_dir = self.root / "jupyter"           # JUPYTER_PATH for the drivers: kernels/<SPEC_NAME>
        self.proc = None

    def start(self, wait: float = 600) -> "Zygote":
        spec = self.spec_dir / "kernels" / SPEC_NAME
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, str(Path(__file__).resolve()), "stub", self.socket, "-f", "{connection_file}"],
            "display_name": "Python 3 (kit grading, warm)", "language": "python", "metadata": {}}), encoding="utf-8")
        self.errors = self.root / "zygote.err"
        with open(self.errors, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve", self.socket],
                                         env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        t0 = time.monotonic()
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None:
                err = self.errors.read_text(encoding="utf-8", errors="replace").strip().splitlines()
                raise RuntimeError(f"the warm-kernel zygote ended before it was ready: {err[-1] if err else '?'}")
            if time.monotonic() - t0 > wait:
                raise RuntimeError(f"the warm-kernel zygote was not ready after {wait:g} s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "serve":
        serve(argv[1])
        return 0
    if len(argv) >= 2 and argv[0] == "stub":
        return stub(argv[1], argv[2:])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
