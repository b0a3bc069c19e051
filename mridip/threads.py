"""CPU thread policy that holds up when the cores are shared with other processes.

The problem: torch's CPU kernels run on a GNU OpenMP (libgomp) team of
``torch.get_num_threads()`` threads. At the end of every parallel region a thread that
is done waits for the others, spinning first (libgomp's default, about 3 ms of spinning,
``GOMP_SPINCOUNT`` = 300000, before it sleeps). When another process holds one of the
cores, a partner thread is descheduled for a whole time slice while the others spin,
and a fitting step made of hundreds of small parallel regions becomes 10-70x slower
(measured on a 2-core machine, ``docs/benchmarks.md``, "Shared cores").

What :func:`apply_thread_policy` does (at ``import mridip``, before torch's OpenMP
runtime starts):

1. Thread count from the cores actually free. At start, ``allowed cores - load average``
   (rounded, at least 1; ``os.sched_getaffinity`` gives the allowed cores). Then, while
   the process runs, a governor (:func:`adapt_threads`, called by every
   ``torch.optim`` step through a global optimizer step pre-hook, and callable from any
   other loop) re-measures at most once per second how much CPU *other* processes used
   on the allowed cores (``/proc/stat`` minus this process's own ``/proc/self/stat``
   time, so our own spinning does not count) and sets ``torch.set_num_threads`` to the
   cores left: one thread beside a busy process on 2 cores, all of them again when it
   ends. With one thread torch runs no OpenMP team, so nothing spins.
2. The OpenMP wait policy is left at libgomp's default. Measured on this project's
   2-core machine (``docs/benchmarks.md``): ``OMP_WAIT_POLICY=PASSIVE`` makes a demo-size
   TDDIP step about 2x slower on an idle machine (every region ends with a futex wake-up),
   far above the 10 % this policy may cost there, while the adaptive thread count removes
   the collapse on its own. A user who prefers passive waiting sets
   ``OMP_WAIT_POLICY=PASSIVE`` themselves; it is respected.

What it leaves alone: ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` set (or
``torch.set_num_threads`` called before ``import mridip``, or later: the governor stops
when it finds a thread count it did not set); ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT``
are never written. ``MRIDIP_THREADS=off`` turns the whole policy off;
``MRIDIP_THREADS=N`` fixes N threads (no governor).

:func:`thread_policy` returns what was decided and why, for outputs to record.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Mapping

#: Environment variables that, when set by the user, mean "my thread settings, leave them".
USER_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Wait-policy variables the policy never writes (read by libgomp when torch is imported).
USER_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
#: Seconds between two measurements of the other processes' CPU use.
INTERVAL_S = 1.0
#: Other processes' load (in cores) at which one more of our threads is given up; 0.6
#: keeps 2 threads beside an occasional short job (< 0.4 core) and drops to 1 beside a busy one.
MARGIN = 0.6

_RECORD: dict[str, Any] | None = None
_GOVERNOR: "_Governor | None" = None
_HOOK = None


def allowed_cpus() -> list[int]:
    """CPU ids this process may run on (``os.sched_getaffinity``, else all)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _free_threads(cores: int, others: float) -> int:
    """Threads for ``cores`` allowed cores when other processes use ``others`` cores."""
    return max(1, min(cores, int(cores - others + MARGIN)))


def decide(environ: Mapping[str, str], cpus: list[int], loadavg: float | None,
           torch_threads: int | None = None) -> dict[str, Any]:
    """The thread policy for an environment, without applying it (pure; for tests).

    Parameters
    ----------
    environ : mapping
        The process environment (``os.environ``).
    cpus : list of int
        Allowed CPU ids (:func:`allowed_cpus`).
    loadavg : float or None
        1-minute load average of the machine (``os.getloadavg()[0]``), or None when
        unknown or not about these cores (affinity narrower than the machine).
    torch_threads : int or None
        ``torch.get_num_threads()`` when torch was imported before the policy, else None.

    Returns
    -------
    dict
        ``mode``: ``"adaptive"`` (governor on), ``"fixed"`` (``MRIDIP_THREADS=N``),
        ``"user"`` (the user's own thread settings kept) or ``"off"``;
        ``threads``: the count to set now (None: leave torch's); ``cores``;
        ``loadavg``; ``env_set``: variables to write (always empty: see module notes);
        ``user_env``: the user's thread/wait variables found; ``reasons``: list of str.
    """
    cores = len(cpus)
    user_env = {k: environ[k] for k in (*USER_THREAD_VARS, *USER_WAIT_VARS) if environ.get(k)}
    rec: dict[str, Any] = {"mode": "adaptive", "threads": None, "cores": cores, "loadavg": loadavg,
                           "env_set": {}, "user_env": user_env, "reasons": []}
    reasons = rec["reasons"]
    setting = environ.get("MRIDIP_THREADS", "").strip().lower()
    if setting in ("off", "0", "no", "false", "none"):
        rec["mode"] = "off"
        reasons.append(f"MRIDIP_THREADS={environ['MRIDIP_THREADS']}: thread policy off, torch's defaults kept")
        return rec
    if any(k in user_env for k in USER_WAIT_VARS):
        reasons.append("wait policy from the user's " + ", ".join(f"{k}={user_env[k]}" for k in USER_WAIT_VARS
                                                                  if k in user_env))
    else:
        reasons.append("OpenMP wait policy: libgomp default (measured: PASSIVE costs ~2x per small step "
                       "on an idle 2-core machine; the adaptive thread count prevents the collapse)")
    if setting and setting not in ("auto", ""):
        try:
            n = int(setting)
        except ValueError:
            n = 0
        if n < 1:
            rec["mode"] = "off"
            reasons.append(f"MRIDIP_THREADS={environ['MRIDIP_THREADS']!r} is not off, auto or a positive "
                           "integer: thread policy off")
            return rec
        rec.update(mode="fixed", threads=n)
        reasons.append(f"MRIDIP_THREADS={n}: {n} torch threads, no governor")
        return rec
    thread_vars = [k for k in USER_THREAD_VARS if k in user_env]
    if thread_vars:
        rec["mode"] = "user"
        reasons.append("thread count from the user's " + ", ".join(f"{k}={user_env[k]}" for k in thread_vars))
        return rec
    if torch_threads is not None and torch_threads != cores:
        rec["mode"] = "user"
        reasons.append(f"torch.set_num_threads({torch_threads}) called before import mridip: kept")
        return rec
    if loadavg is None:
        rec["threads"] = cores
        reasons.append(f"{cores} allowed cores, load unknown: {cores} threads; the governor adapts")
    else:
        rec["threads"] = _free_threads(cores, loadavg)
        reasons.append(f"{cores} allowed cores, load average {loadavg:.2f}: {rec['threads']} threads; "
                       f"the governor re-measures every {INTERVAL_S:g} s")
    return rec


def _busy_ticks(cpus: list[int]) -> int | None:
    """Busy clock ticks (user+nice+system+irq+softirq) of ``cpus`` since boot, from /proc/stat."""
    want = {f"cpu{i}" for i in cpus}
    total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in want:
                    v = [int(p) for p in parts[1:8]]
                    total += v[0] + v[1] + v[2] + v[5] + v[6]
    except (OSError, ValueError, IndexError):
        return None
    return total


def _self_ticks() -> int | None:
    """This process's user+system clock ticks (all threads), from /proc/self/stat."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
    except (OSError, ValueError, IndexError):
        return None


class _Governor:
    """Sets torch's thread count to the cores other processes leave free (see module notes)."""

    def __init__(self, cpus: list[int], threads: int):
        import torch

        self._torch = torch
        self.cpus = cpus
        self.threads = threads
        self.active = True
        self.changes = 0
        self.last_others: float | None = None
        self.stopped_reason: str | None = None
        self._hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._pid = os.getpid()
        self._t = time.monotonic()
        self._busy = _busy_ticks(cpus)
        self._own = _self_ticks()
        if self._busy is None or self._own is None:
            self.active = False
            self.stopped_reason = "/proc/stat or /proc/self/stat unreadable: no governor"

    def poll(self) -> None:
        if not self.active:
            return
        now = time.monotonic()
        dt = now - self._t
        if dt < INTERVAL_S:
            return
        current = self._torch.get_num_threads()
        if current != self.threads:
            self.active = False
            self.stopped_reason = f"thread count changed to {current} outside the policy: governor stopped"
            return
        busy, own = _busy_ticks(self.cpus), _self_ticks()
        if busy is None or own is None:
            return
        if os.getpid() != self._pid:  # a forked child: its own CPU time starts anew
            self._pid, self._t, self._busy, self._own = os.getpid(), now, busy, own
            return
        others = max(0.0, ((busy - self._busy) - (own - self._own)) / (self._hz * dt))
        self._t, self._busy, self._own = now, busy, own
        self.last_others = others
        target = _free_threads(len(self.cpus), others)
        if target != self.threads:
            self._torch.set_num_threads(target)
            self.threads = target
            self.changes += 1


def adapt_threads() -> None:
    """Let the governor re-measure the free cores (at most once per second; else a no-op).

    Called on every ``torch.optim`` optimizer step once the policy is applied; loops that
    use no optimizer (CG, ADMM, benchmark loops) may call it once per iteration. Costs a
    clock read between measurements and two small /proc reads at one.
    """
    if _GOVERNOR is not None:
        _GOVERNOR.poll()


def refresh_threads(sample_s: float = 0.25) -> int:
    """Measure the free cores now (over ``sample_s`` seconds of sleep) and set the thread count.

    For the start of a benchmark or a long run, where the load average read at import may be
    stale (it averages the last minute, finished jobs included). A no-op returning
    ``torch.get_num_threads()`` when the governor is off or stopped.
    """
    g = _GOVERNOR
    if g is not None and g.active:
        g._t, g._busy, g._own = time.monotonic(), _busy_ticks(g.cpus), _self_ticks()
        time.sleep(max(0.05, float(sample_s)))
        g._t -= INTERVAL_S  # measure over the sample, whatever its length
        g.poll()
    return sys.modules["torch"].get_num_threads() if "torch" in sys.modules else 0


def _loadavg_for(cpus: list[int]) -> float | None:
    if len(cpus) != (os.cpu_count() or len(cpus)):
        return None  # the machine's load average is not about the cores we may use
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def apply_thread_policy() -> dict[str, Any]:
    """Apply the thread policy once per process (later calls return the first record).

    Call it before ``import torch`` where possible (``import mridip`` does, at its top).
    Returns the record of :func:`thread_policy`.
    """
    global _RECORD, _GOVERNOR, _HOOK
    if _RECORD is not None:
        return thread_policy()
    cpus = allowed_cpus()
    torch_before = "torch" in sys.modules
    torch_threads = sys.modules["torch"].get_num_threads() if torch_before else None
    rec = decide(os.environ, cpus, _loadavg_for(cpus), torch_threads)
    rec["torch_imported_before"] = torch_before
    for k, v in rec["env_set"].items():
        os.environ[k] = v
    if rec["mode"] in ("adaptive", "fixed"):
        import torch

        torch.set_num_threads(int(rec["threads"]))
        if rec["mode"] == "adaptive":
            _GOVERNOR = _Governor(cpus, int(rec["threads"]))
            if _GOVERNOR.active:
                from torch.optim.optimizer import register_optimizer_step_pre_hook

                _HOOK = register_optimizer_step_pre_hook(lambda *_a, **_k: _GOVERNOR.poll())
            else:
                rec["reasons"].append(_GOVERNOR.stopped_reason)
    _RECORD = rec
    return thread_policy()


def thread_policy() -> dict[str, Any]:
    """What the thread policy set and why (a JSON-able dict; ``{"mode": "not applied"}`` before).

    Keys: ``mode``, ``threads`` (count set at start), ``cores``, ``loadavg``,
    ``env_set``, ``user_env``, ``reasons``, ``torch_imported_before``, and now
    ``torch_threads`` (``torch.get_num_threads()``), ``wait_policy``
    (``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` in the environment, ``"libgomp default"``),
    ``governor`` (``{"active", "threads", "changes", "last_others_cores", "stopped"}``
    or None).
    """
    if _RECORD is None:
        return {"mode": "not applied"}
    out = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
           for k, v in _RECORD.items()}
    torch = sys.modules.get("torch")
    out["torch_threads"] = torch.get_num_threads() if torch is not None else None
    wait = {k: os.environ[k] for k in USER_WAIT_VARS if os.environ.get(k)}
    out["wait_policy"] = wait or "libgomp default"
    g = _GOVERNOR
    out["governor"] = None if g is None else {
        "active": g.active, "threads": g.threads, "changes": g.changes,
        "last_others_cores": None if g.last_others is None else round(g.last_others, 2),
        "stopped": g.stopped_reason}
    return out


def thread_summary() -> str:
    """One line for tables and logs: e.g. ``"adaptive: 2 of 2 cores (governor: 3 changes)"``."""
    p = thread_policy()
    if p["mode"] in ("not applied", "off"):
        t = sys.modules.get("torch")
        return f"{p['mode']}: torch default ({t.get_num_threads() if t else '?'} threads)"
    s = f"{p['mode']}: {p['torch_threads']} of {p['cores']} cores"
    g = p.get("governor")
    if g:
        s += f" (governor {'on' if g['active'] else 'stopped'}, {g['changes']} changes)"
    if p["wait_policy"] != "libgomp default":
        s += " " + " ".join(f"{k}={v}" for k, v in p["wait_policy"].items())
    return s
