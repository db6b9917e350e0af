"""Run one student notebook in its own kernel, cell by cell, and say what happened to each cell.

    python helpers/grade/kernel.py JOB.json      (started by helpers.grade.pool, in a process of its own)

JOB.json names the notebook (a copy inside the student's working folder), that folder (the kernel's cwd), the
kernel's environment (KIT_CHECK_LOG points outside the folder), the cells to run and the limits. The result
(JSON) says, per cell run: ok, error (with its one line), timeout or died.

- Errors do not stop the run (allow_errors): a crash in one exercise leaves the later ones graded.
- A cell that runs past the cell timeout, or a kernel that dies (os._exit, a segfault, out of memory): the
  kernel is killed with its process group, a fresh one starts, the cells before are run again without their
  check cells and without the cells that failed that way, and grading goes on at the next cell. After
  `max_restarts` such restarts the remaining cells are not run.
- The outputs kept (in the executed copy) are capped per cell and per notebook: a notebook that prints
  megabytes is cut, and says so.
- "needed" mode falls back to every cell when a cell raised NameError (a name the analysis in cells.py could
  not see) or a check found the model in a state an earlier cell should have undone (hooks, train mode).

This file imports nothing from the kit but scripts/notebooks/execute.py's client (nbclient's, without the lost
shell wakeups that made a cell wait for its whole timeout); it runs by its path, so it never imports torch.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

# jsonschema (through nbformat) imports rfc3987_syntax when it is installed, which builds a parser for one string
# format at import: 5 s of CPU per notebook on a busy course machine, for a check notebooks never need.
sys.modules.setdefault("rfc3987_syntax", None)

import nbformat  # noqa: E402
from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "notebooks"))
from execute import Client, kernel_config  # noqa: E402  the kit's nbclient client, without its lost wakeups

CUT = "\n[grader: output cut here; this cell printed more than {} kB]\n"


class Lost(Exception):
    """The kernel was lost at cell `index` (status "timeout" or "died")."""

    def __init__(self, index: int, status: str):
        super().__init__(f"cell {index}: {status}")
        self.index, self.status = index, status


class Caps:
    """Output bytes kept so far, per cell and in all, and the cells that were cut (shared across restarts)."""

    def __init__(self, cell_cap: int, total_cap: int):
        self.cell_cap, self.total_cap = cell_cap, total_cap
        self.used, self.total, self.cut = {}, 0, set()


class CappedClient(Client):
    """The kit's client, keeping at most `caps.cell_cap` bytes of output per cell and `caps.total_cap` per
    notebook (an error output is always kept: it is what grading reads)."""

    caps: Caps

    def forget(self, cell_index: int) -> None:
        """A cell about to run again: what it printed before no longer counts."""
        self.caps.total -= self.caps.used.pop(cell_index, 0)
        self.caps.cut.discard(cell_index)

    def output(self, outs, msg, display_id, cell_index):
        c = self.caps
        if msg.get("header", {}).get("msg_type") == "error" or msg.get("msg_type") == "error":
            return super().output(outs, msg, display_id, cell_index)
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = c.used.get(cell_index, 0) + size
        if used > c.cell_cap or c.total + size > c.total_cap:
            if cell_index not in c.cut:
                c.cut.add(cell_index)
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=CUT.format(c.cell_cap // 1000)))
            return None
        c.used[cell_index], c.total = used, c.total + size
        return super().output(outs, msg, display_id, cell_index)


def make_client(nb, job: dict, caps: Caps) -> CappedClient:
    client = CappedClient(nb, timeout=job["timeout"], kernel_name=job["kernel"], allow_errors=True,
                          interrupt_on_timeout=False, shutdown_kernel="immediate", startup_timeout=120,
                          record_timing=False, resources={"metadata": {"path": job["work"]}},
                          config=kernel_config())
    client.caps = caps
    return client


def remember_kernel(client, job: dict, kernels: list) -> None:
    """Note the kernel's process group (here and in JOB's pid file, for the parent to kill if need be)."""
    prov = getattr(client.km, "provisioner", None)
    pid = getattr(prov, "pgid", None) or getattr(prov, "pid", None)
    if pid:
        kernels.append(pid)
        with open(job["pids"], "a", encoding="utf-8") as f:
            f.write(f"{pid}\n")


def kill(kernels: list) -> None:
    """SIGKILL each kernel's process group (the kernel and whatever it started)."""
    for pgid in kernels:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    kernels.clear()


def execute(client, nb, index: int) -> dict:
    """Run cell `index`; {"status": "ok"} or {"status": "error", "error": "Ename: first line"}; Lost if the
    kernel timed out or died."""
    cell = nb.cells[index]
    client.forget(index)
    try:
        client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    except CellTimeoutError:
        raise Lost(index, "timeout") from None
    except DeadKernelError:
        raise Lost(index, "died") from None
    err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    if err is None:
        return {"status": "ok"}
    line = (str(err.get("evalue", "")).strip().splitlines() or [""])[0][:300]
    return {"status": "error", "error": f"{err.get('ename', 'Error')}: {line}".rstrip(": ")}


def run_plan(nb, job: dict, plan: list[int], notes: list) -> tuple[dict, int]:
    """Run the cells of `plan`; returns ({index: outcome}, restarts). See the module docstring."""
    events, skip, done, restarts, kernels = {}, set(), 0, 0, []
    caps = Caps(job["cell_cap"], job["total_cap"])
    checks = {int(k) for k, kind in job["kinds"].items() if kind == "check"}
    while done < len(plan):
        if restarts > job["max_restarts"]:
            events.update({i: {"status": "not_run"} for i in plan[done:]})
            notes.append(f"stopped after {restarts - 1} kernel restarts; cells {plan[done:]} not run")
            break
        client = make_client(nb, job, caps)
        try:
            with client.setup_kernel(cwd=job["work"], env=job["env"]):
                remember_kernel(client, job, kernels)
                for index in plan[:done]:                  # after a restart: the state, without the checks
                    if index not in skip and index not in checks:
                        execute(client, nb, index)
                while done < len(plan):
                    events[plan[done]] = execute(client, nb, plan[done])
                    done += 1
        except Lost as lost:
            if lost.index not in events:                   # (a replayed cell that fails now is only skipped)
                events[lost.index] = {"status": lost.status}
                done += 1
                notes.append(f"cell {lost.index}: {'ran past the cell timeout' if lost.status == 'timeout' else 'the kernel died'}"
                             f"; kernel restarted")
            skip.add(lost.index)
            restarts += 1
        except Exception as e:  # noqa: BLE001  the kernel did not start: nothing more can run
            events.update({i: {"status": "not_run"} for i in plan[done:]})
            notes.append(f"the kernel could not start ({type(e).__name__}: {str(e)[:200]})")
            break
        finally:
            kill(kernels)
    if caps.cut:
        notes.append(f"output cut in cells {sorted(caps.cut)}")
    return events, restarts


def needs_every_cell(events: dict, plan: list[int], log: Path, state_keys: list[str]) -> bool:
    """In "needed" mode: did a cell miss a name (with no cell before it failed, which would explain it: a
    check cell after an exercise cell with a SyntaxError), or a check find state an unrun cell would have undone?"""
    for index in plan:
        e = events.get(index, {})
        if e.get("error", "").startswith("NameError"):
            return True
        if e.get("status", "ok") != "ok":
            break
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    keys = []
    for line in lines:
        try:
            keys.append(json.loads(line).get("key"))
        except (ValueError, AttributeError):
            continue
    return any(k in state_keys for k in keys)


def fresh(nb) -> None:
    """Clear the outputs the student saved, so the executed copy shows this run only."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None


def grade(job: dict) -> dict:
    t0 = time.monotonic()
    nb = nbformat.read(job["notebook"], as_version=4)
    fresh(nb)
    mode, notes = job["mode"], []
    events, restarts = run_plan(nb, job, job["plans"][mode], notes)
    if mode == "needed" and needs_every_cell(events, job["plans"][mode], Path(job["log"]), job["state_keys"]):
        Path(job["log"]).write_text("", encoding="utf-8")
        fresh(nb)
        notes.append("ran again with every cell (a name or a state the first run's cells did not provide)")
        mode = "all"
        events, more = run_plan(nb, job, job["plans"][mode], notes)
        restarts += more
    nbformat.write(nb, job["executed"])
    return {"mode": mode, "cells": {str(k): v for k, v in events.items()}, "restarts": restarts,
            "notes": notes, "seconds": round(time.monotonic() - t0, 1)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: kernel.py JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = grade(job)
    Path(job["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
