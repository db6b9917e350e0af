#!/usr/bin/env python3
"""Execute notebooks like `jupyter nbconvert --to notebook --execute`, without its two problems here.

    python scripts/notebooks/execute.py --inplace NB.ipynb ...            # rewrite the notebooks
    python scripts/notebooks/execute.py --output-dir DIR NB.ipynb ...     # write DIR/<same name>
    options: --timeout S (per cell, default 600; <= 0: none), --kernel NAME (default: the
    notebook's kernelspec), --no-widget-state, --log-level LEVEL (default WARNING)

Same semantics as `jupyter nbconvert --to notebook --execute [--inplace | --output-dir DIR]
--ExecutePreprocessor.timeout=S --ExecutePreprocessor.store_widget_state=True`: each notebook
runs in a fresh kernel whose working directory is the notebook's folder; widget state is
stored in the notebook metadata; the first failing cell stops everything (exit 1), and a
notebook that failed is not written.

1. The stall (notebook 05, the ipywidgets explorer). Now and then a cell that the kernel
   finished in seconds waited for the whole cell timeout and then went on without an error.
   The execute_reply was in the client's shell socket the whole time; the client missed
   the wakeup for it:
   * nbclient waits for execute_reply with `await kc.shell_channel.get_msg(timeout=<rest of
     the cell timeout>)` (nbclient/client.py:782), an asyncio poll on the shell socket
     (jupyter_client/channels.py:325) that libzmq wakes through an *edge-triggered* fd.
   * While that poll is pending, nbclient's stand-in for the front end's Output widget
     (nbclient/output_widget.py:63; used for `with out: clear_output(wait=True);
     display(...)`, as the explorer draws) answers every captured output by sending a
     comm_msg with the new outputs (here a PNG of ~100 kB) on the *same* shell socket.
   * Session.send sends through a blocking shadow of the asyncio socket
     (jupyter_client/session.py:819-821), past pyzmq's asyncio bookkeeping. The send makes
     libzmq process the socket's pending commands, which uses up the fd edge of an
     execute_reply that has just arrived; pyzmq's own async send would look at
     zmq.EVENTS and wake the waiting poll (zmq/_future.py `_add_send_event`), the shadow
     send does not. The poll then sleeps until its timeout, and only its final
     non-blocking check finds the reply, so the cell takes the whole timeout and no error
     is raised. Whether the comm_msg is sent right as the reply arrives is a race; the
     explorer's last figure is drawn just before the cell ends, so it happens now and
     then (11 of 40 nbconvert runs of 05 here, each cell taking exactly its 60 s
     timeout). The ipywidgets version does not matter: nbclient's mimic sends the
     comm_msg. Reported as jupyter/nbclient#312 (PR #311, not merged); probably also
     jupyter/nbconvert#2003 and #2029.
   Fix, in a shell channel used here: (a) after every send, read zmq.EVENTS through the
   asyncio socket, which makes pyzmq wake any poll whose message is already queued (pyzmq
   handles a user reading EVENTS on purpose); (b) the wait for a reply polls at most
   SHELL_POLL_S at a time up to the same deadline, so any other lost wakeup costs at most
   that long and never the whole timeout. With the fix: 0 stalls in 80 runs.

2. "Kernel is running over TCP without encryption": ipykernel 7.4 logs this warning
   (ipykernel/kernelapp.py:359-368) from every kernel it starts on TCP without CurveZMQ
   keys, once per notebook, and jupyter_client's KernelManager.transport_encryption
   defaults to "disabled" (jupyter_client/manager.py:162). Here the kernel manager
   provisions CurveZMQ keys (transport_encryption="auto": only for kernelspecs that
   declare supported_encryption "curve", as ipykernel's does); where pyzmq has no
   CurveZMQ it uses the IPC transport instead (POSIX). With nbconvert the same is
   `--KernelManager.transport_encryption=auto`.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets.config import Config

log = logging.getLogger("execute")

SHELL_POLL_S = 1.0      # longest single wait on the shell socket (fix b)


class ShellChannel(AsyncZMQSocketChannel):
    """The asyncio shell channel, without lost wakeups (see the module docstring, 1)."""

    rearmed = 0     # sends made while a get_msg waited and a message was already queued (for the log)
    _waiting = 0

    def send(self, msg):
        super().send(msg)                   # through a blocking shadow socket (Session.send)
        sock = self.socket
        if isinstance(sock, zmq.asyncio.Socket) and not sock.closed:
            # (a) reading EVENTS on the asyncio socket schedules the waiting poll/recv if a
            # message is already queued, so the edge this send may have used up is not lost
            if sock.get(zmq.EVENTS) & zmq.POLLIN and self._waiting:
                ShellChannel.rearmed += 1

    async def get_msg(self, timeout=None):
        # (b) never sleep on one edge for long: wait in steps of SHELL_POLL_S, same deadline
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiting += 1
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    return await super().get_msg(timeout=SHELL_POLL_S if left is None else min(SHELL_POLL_S, left))
                except Empty:
                    if left is not None and time.monotonic() >= deadline:
                        raise
        finally:
            self._waiting -= 1


class KernelClient(AsyncKernelClient):
    shell_channel_class = ShellChannel


class Client(NotebookClient):
    """nbclient's NotebookClient with the shell channel above."""

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.client_factory = KernelClient
        return km


def kernel_config() -> Config:
    """Kernel transport without the 'TCP without encryption' warning (module docstring, 2)."""
    c = Config()
    if zmq.has("curve"):
        c.KernelManager.transport_encryption = "auto"
    elif os.name == "posix":
        c.KernelManager.transport = "ipc"
    return c


def execute(path: Path, out: Path, timeout: float | None, kernel: str | None, widget_state: bool) -> None:
    nb = nbformat.read(path, as_version=4)
    client = Client(nb, timeout=timeout, kernel_name=kernel or "", store_widget_state=widget_state,
                    resources={"metadata": {"path": str(path.parent.resolve())}}, config=kernel_config(),
                    log=logging.getLogger("nbclient"))
    client.execute()
    nbformat.write(nb, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="execute.py", description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--inplace", action="store_true", help="overwrite each notebook with its executed copy")
    where.add_argument("--output-dir", type=Path, help="write the executed copies here, under the same names")
    p.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600; <= 0: no limit)")
    p.add_argument("--kernel", default=None, help="kernel name (default: the notebook's kernelspec)")
    p.add_argument("--no-widget-state", dest="widget_state", action="store_false",
                   help="do not store widget state in the notebook metadata")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level, format="[%(name)s] %(levelname)s | %(message)s")

    missing = [str(nb) for nb in a.notebooks if not nb.is_file()]
    if missing:
        p.error(f"no such notebook: {', '.join(missing)}")
    if a.output_dir:
        a.output_dir.mkdir(parents=True, exist_ok=True)
    timeout = a.timeout if a.timeout > 0 else None
    for nb in a.notebooks:
        out = nb if a.inplace else a.output_dir / nb.name
        t0 = time.monotonic()
        try:
            execute(nb, out, timeout, a.kernel, a.widget_state)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
            print(f"{nb}: not written: {type(e).__name__}\n{e}", file=sys.stderr)
            return 1
        log.info("%s -> %s (%.1f s; %d shell wakeups re-armed)", nb, out, time.monotonic() - t0,
                 ShellChannel.rearmed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
