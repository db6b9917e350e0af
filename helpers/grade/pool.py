"""Grade many notebooks, each in a process of its own (helpers/grade/kernel.py), at most `jobs` at a time.

    Options(timeout=120, notebook_timeout=900, jobs=1, ...)    the limits and where to keep executed copies
    prepare(sub, tmpl) -> Prepared                             the notebook to run, its cells' roles, its plans
    kernel_env(opts) -> {name: value}                          what every kernel gets (stand-in, offline, ...)
    grade_all(subs, tmpl, opts, progress) -> [Graded]          run them all; `progress(graded, done, total)`
                                                               is called as each one ends

Each notebook runs in its own working folder (a copy of the notebook and of its student's other files, its
HOME too), started in a session of its own and killed with its process group (and its kernels') when it ends
or runs past `notebook_timeout`. The grader's files for a notebook (job, check log, result) sit outside every
working folder, each notebook's are made just before it starts and read as soon as it ends, and nothing of the
report is written until all have run: a notebook that deletes files around it can spoil its own grade at most.
This is robustness, not a sandbox: a notebook that sets out to do harm can do whatever the grader's user can
(grade untrusted work as an unprivileged user, or in a container).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import nbformat

from ..loading import ModelUnavailable, cache_root, standin_dir
from . import cells as cellplan
from . import warm
from .submissions import ROOT, Exercise, Submission

KERNEL_PY = Path(__file__).resolve().with_name("kernel.py")
STATE_KEYS = ["hooks-before", "train-mode-before"]   # a check that found these: an unrun cell should have undone it
DRIVER_CAP = 20_000                                  # bytes of the worker's own stdout/stderr kept (its last lines)


@dataclass
class Options:
    timeout: float = 120              # seconds per cell
    notebook_timeout: float = 900     # seconds per notebook, restarts included
    jobs: int = 1                     # notebooks at a time
    mode: str = "needed"              # which cells run: cells.MODES
    cell_cap: int = 200_000           # output bytes kept per cell ...
    total_cap: int = 2_000_000        # ... and per notebook
    max_restarts: int = 3             # kernel restarts (a timeout, a death) before the rest is not run
    kernel: str = "python3"
    model: str = "stand-in"           # KIT_MODEL for every kernel
    executed: Path | None = None      # keep each executed copy here (None: do not)
    warm: bool = True                 # fork each kernel from one that has imported the kit (helpers.grade.warm)
    only: tuple = ()                  # grade these exercise labels only ("(a)", ...); () = every one


@dataclass
class Prepared:
    nb: object | None                 # the notebook to run (None: it cannot be read)
    roles: list = field(default_factory=list)
    plans: dict = field(default_factory=dict)
    added: list = field(default_factory=list)   # labels whose check cell the grader put back


@dataclass
class Graded:
    sub: Submission
    roles: list                        # cells.Role of the notebook that ran
    result: dict | None                # kernel.py's result (None: it gave none)
    log: list                          # the checks' JSON lines, in order
    seconds: float
    lost: str = ""                     # why there is no result: "timeout" (the notebook's limit), "failed: ..."
    added: list = field(default_factory=list)
    output: str = ""                   # the worker's own last output (for a failure)


def prepare(sub: Submission, tmpl: dict[str, list[Exercise]], only: tuple = ()) -> Prepared:
    """The notebook to run: the submission, with the check cell of each exercise whose check cell the student
    removed put back after the exercise cell; its cells' roles and both plans (`only`: the labels graded;
    the other exercises' cells count as ordinary cells)."""
    if sub.unreadable:
        return Prepared(None)
    try:
        nb = nbformat.reads(sub.text, as_version=4)
    except Exception:  # noqa: BLE001  nbformat raises many kinds for a broken file
        return Prepared(None)
    exs = tmpl.get(sub.notebook, [])
    names = {e.name: e.label for e in exs}
    rs = cellplan.roles(nb, names)
    added = []
    for e in exs:
        if only and e.label not in only:
            continue
        has_check = any(r.kind == "check" and r.label == e.label for r in rs)
        ex_cell = next((r.index for r in rs if r.kind == "exercise" and r.label == e.label), None)
        if not has_check and ex_cell is not None and e.check:
            nb.cells.insert(ex_cell + 1, nbformat.v4.new_code_cell(e.check))
            added.append(e.label)
            rs = cellplan.roles(nb, names)
    if only:                                          # the other exercises' cells: ordinary cells
        for r in rs:
            if r.label and r.label not in only:
                r.kind, r.label = "other", None
    return Prepared(nb, rs, {m: cellplan.plan(rs, m) for m in cellplan.MODES}, added)


def _kit_paths() -> dict:
    """KIT_CACHE and MPLCONFIGDIR as the grader's user has them (the kernels' HOME is their working folder:
    without these each would build the stand-in and matplotlib's font cache again), the stand-in built once."""
    try:
        standin_dir()
    except ModelUnavailable as e:
        raise SystemExit(f"helpers.grade: the kit cannot build its stand-in model here, so no check could run: {e}")
    return {"KIT_CACHE": str(cache_root()), "MPLCONFIGDIR": matplotlib.get_configdir()}


def kernel_env(opts: Options, paths: dict | None = None) -> dict:
    """The environment every kernel starts from: the grader's, with the offline stand-in (as `make test`
    runs the checks), this checkout's helpers first on the path, and one BLAS thread per job's share of cores."""
    env = dict(os.environ)
    env.update(paths if paths is not None else _kit_paths())
    threads = max(1, (os.cpu_count() or 1) // max(1, opts.jobs))
    env.update({"KIT_MODEL": opts.model, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_VERBOSITY": "error",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, str(threads))
    return env


def _drain(stream, keep: list) -> None:
    """Read the worker's output to its end, keeping the last DRIVER_CAP bytes (a kernel that prints through
    the file descriptor it inherited cannot fill the disk or block the worker)."""
    buf = b""
    for chunk in iter(lambda: stream.read(65536), b""):
        buf = (buf + chunk)[-DRIVER_CAP:]
    keep.append(buf.decode("utf-8", "replace"))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


class _Running:
    """One notebook being graded: its folders, its worker process, its deadline."""

    def __init__(self, n: int, sub: Submission, prep: Prepared, root: Path, env: dict, opts: Options,
                 zygote: warm.Zygote | None):
        self.sub, self.prep, self.opts, self.t0 = sub, prep, opts, time.monotonic()
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{sub.student}-{sub.path.stem}")[:80]
        self.meta = root / "meta" / f"{n:04d}"
        self.work = root / "work" / f"{n:04d}-{safe}"
        self.meta.mkdir(parents=True)
        self.work.mkdir(parents=True)
        for rel, data in sub.files.items():
            target = self.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        notebook = self.work / sub.path.name
        nbformat.write(prep.nb, notebook)
        self.log, self.result, self.pids = self.meta / "checks.jsonl", self.meta / "result.json", self.meta / "pids"
        kenv = {**env, "KIT_CHECK_LOG": str(self.log), "HOME": str(self.work), warm.PIDS_VAR: str(self.pids)}
        kernel = warm.SPEC_NAME if zygote else opts.kernel
        job = {"notebook": str(notebook), "work": str(self.work), "env": kenv, "kernel": kernel,
               "mode": opts.mode, "plans": prep.plans, "kinds": {str(r.index): r.kind for r in prep.roles},
               "timeout": opts.timeout, "cell_cap": opts.cell_cap, "total_cap": opts.total_cap,
               "max_restarts": opts.max_restarts, "state_keys": STATE_KEYS, "log": str(self.log),
               "pids": str(self.pids), "result": str(self.result), "executed": str(self.meta / "executed.ipynb")}
        (self.meta / "job.json").write_text(json.dumps(job), encoding="utf-8")
        denv = dict(os.environ)
        if zygote:
            denv["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(zygote.spec_dir), os.environ.get("JUPYTER_PATH")]))
        self.proc = subprocess.Popen([sys.executable, str(KERNEL_PY), str(self.meta / "job.json")], cwd=self.meta,
                                     env=denv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.output: list[str] = []
        threading.Thread(target=_drain, args=(self.proc.stdout, self.output), daemon=True).start()

    def overdue(self) -> bool:
        return time.monotonic() - self.t0 > self.opts.notebook_timeout

    def kill(self) -> None:
        """The worker's process group and every kernel it started (each in a session of its own)."""
        try:
            pids = [int(x) for x in self.pids.read_text(encoding="utf-8").split()]
        except (OSError, ValueError):
            pids = []
        for pgid in pids:
            _kill_group(pgid)
        _kill_group(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def finish(self, lost: str = "") -> Graded:
        self.kill()
        result = None
        try:
            result = json.loads(self.result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            if not lost:
                lost = f"failed: the grader's worker ended with exit code {self.proc.returncode} and no result"
        log = []
        try:
            for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and "exercise" in rec and "status" in rec:
                    log.append(rec)
        except OSError:
            pass
        if self.opts.executed is not None and (self.meta / "executed.ipynb").is_file():
            name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.sub.key.replace("/", "__"))
            self.opts.executed.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.meta / "executed.ipynb", self.opts.executed / name)
        time.sleep(0.05)                                   # let the drain thread read the last bytes
        out = self.output[0] if self.output else ""
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.meta, ignore_errors=True)
        return Graded(self.sub, self.prep.roles, result, log, round(time.monotonic() - self.t0, 1), lost,
                      self.prep.added, out)


def grade_all(subs: list[Submission], tmpl: dict[str, list[Exercise]], opts: Options,
              progress=None) -> list[Graded]:
    """Grade every submission (in the order given), `opts.jobs` at a time; `progress(graded, done, total)` is
    called as each ends. Returns them in the order given."""
    opts.jobs = max(1, int(opts.jobs))
    env = kernel_env(opts)
    root = Path(tempfile.mkdtemp(prefix="kit-grade-"))
    out: dict[int, Graded] = {}
    pending = list(enumerate(subs))
    running: dict[int, _Running] = {}
    zygote = None
    try:
        if opts.warm:
            zygote = warm.Zygote(env, root / "zygote").start()
        while pending or running:
            while pending and len(running) < opts.jobs:
                n, sub = pending.pop(0)
                prep = prepare(sub, tmpl, tuple(opts.only))
                if prep.nb is None:                          # unreadable: nothing to run
                    out[n] = Graded(sub, [], None, [], 0.0, "", [])
                    progress and progress(out[n], len(out), len(subs))
                    continue
                running[n] = _Running(n, sub, prep, root, env, opts, zygote)
            time.sleep(0.2)
            for n, job in list(running.items()):
                if job.proc.poll() is not None:
                    out[n] = job.finish()
                elif job.overdue():
                    out[n] = job.finish(lost="timeout")
                else:
                    continue
                del running[n]
                progress and progress(out[n], len(out), len(subs))
    finally:
        for job in running.values():
            job.kill()
        if zygote:
            zygote.stop()
        shutil.rmtree(root, ignore_errors=True)
    return [out[n] for n in range(len(subs))]
