"""Fuzz every parser and scoring hook with hostile model outputs and data rows.

Drives ``--n`` inputs (default 100,000) from the seeded generator of ``tests/fuzz_harness.py``
through each target and prints, per target: inputs, crashes (an exception, a non-finite metric,
or a record lm-eval's samples-log encoder cannot write), the slowest input's time and its kind
(an input over 0.5 s is timed three times and counts with its fastest time: the machine is
shared), and the smallest crashing input. An audit hook counts any input that executes code, starts a
process or opens a file for writing while a target runs (column ``audit``).

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/fuzz_parsers.py [--n 100000] [--seed 0]
        [--only SUB1,SUB2]   (targets whose name contains one of them)  [--part K/N]  (every N-th target from the K-th)

Exit status 1 when any target crashed, took 1 s or more on one input, or tripped the audit hook.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import signal
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz_harness as fh  # noqa: E402

LIMIT_S = 1.0
# The machine is shared: an input that takes RETIME_S or more is timed twice more and its time
# is the minimum of the three (a contention spike is not the input's cost; a slow input stays slow).
RETIME_S = 0.5
ABORT_S = 10  # an input still running after this long is stopped (where Python can stop it) and counted


class InputTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise InputTimeout(f"still running after {ABORT_S} s")
_WRITE_MODES = ("w", "a", "x", "+")
_audit = {"armed": False, "events": []}


def _audit_hook(event: str, args: tuple) -> None:
    if not _audit["armed"]:
        return
    bad = event in ("exec", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.fork",
                    "os.remove", "os.unlink", "os.rmdir", "os.rename", "shutil.rmtree", "os.mkdir")
    if event == "open" and len(args) > 1 and isinstance(args[1], str) and any(m in args[1] for m in _WRITE_MODES):
        bad = True
    if event == "open" and len(args) > 2 and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        bad = True
    if bad:
        _audit["events"].append(event)


def _size(value) -> int:
    """Length of a value as the table ranks crashing inputs (never raises)."""
    try:
        return len(value) if isinstance(value, (str, bytes, list, dict, tuple)) else len(repr(value))
    except Exception:
        return 10**9


def _short(value, width: int = 60) -> str:
    try:
        text = ascii(value)
    except Exception:  # e.g. an int over Python's int-to-string limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else f"{text[:width - 20]}...({_size(value)} chars)"


def _time_once(target: fh.Target, value) -> float:
    """One more timed call (the audit hook armed); any failure was already counted."""
    _audit["armed"] = True
    signal.alarm(ABORT_S)
    started = time.perf_counter()
    try:
        fh.check(target, value)
    except Exception:
        pass
    finally:
        elapsed = time.perf_counter() - started
        signal.alarm(0)
        _audit["armed"] = False
    return elapsed


def run_target(target: fh.Target, n: int, inputs: list) -> dict:
    crashes, slowest, slowest_kind, smallest = 0, 0.0, "", None
    first_error = ""
    audit_before = len(_audit["events"])
    warm_up = "Node:\n1: x\n(START,1) (1,END) Answer_1: The answer is 1."
    try:
        fh.check(target, warm_up)  # lazy imports happen here, before the audit hook is armed
    except Exception:
        pass  # counted below: the warm-up input is also the first input
    for kind, value in [("warm-up", warm_up), *inputs[: n - 1]]:
        _audit["armed"] = True
        signal.alarm(ABORT_S)
        started = time.perf_counter()
        try:
            fh.check(target, value)
            failed = None
        except Exception as exc:  # the bench counts every failure; the table shows the smallest
            failed = exc
        finally:
            elapsed = time.perf_counter() - started
            signal.alarm(0)
            _audit["armed"] = False
        if elapsed >= RETIME_S and failed is None:
            elapsed = min(elapsed, *(_time_once(target, value) for _ in range(2)))
        if elapsed > slowest:
            slowest, slowest_kind = elapsed, kind
        if failed is not None:
            crashes += 1
            if smallest is None or _size(value) < _size(smallest):
                smallest = value
                first_error = f"{type(failed).__name__}: {str(failed)[:80]}"
    return {"name": target.name, "reads": target.reads, "inputs": n, "crashes": crashes, "slowest_s": slowest,
            "slowest_kind": slowest_kind, "smallest": smallest, "error": first_error,
            "audit": len(_audit["events"]) - audit_before}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs per target (default 100,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="targets whose name contains one of these (comma-separated)")
    parser.add_argument("--part", default="1/1", help="K/N: run every N-th target from the K-th (split a run over processes)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # scorers warn per bad item; 100,000 warnings are noise here
    warnings.simplefilter("ignore")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    part, parts = (int(x) for x in args.part.split("/"))
    targets = fh.targets(args.only)[part - 1::parts]
    inputs = list(fh.hostile_inputs(args.n - 1, args.seed))  # the same inputs for every target
    sys.addaudithook(_audit_hook)
    signal.signal(signal.SIGALRM, _alarm)
    started = time.time()
    print(f"# fuzz_parsers: {args.n:,} inputs per target, seed {args.seed}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"| target | reads | inputs | crashes | slowest (s) | slowest kind | audit | smallest crashing input |")
    print("|---|---|---:|---:|---:|---|---:|---|")
    failed = False
    for target in targets:
        row = run_target(target, args.n, inputs)
        smallest = "" if row["smallest"] is None and not row["crashes"] else f"`{_short(row['smallest'])}` ({row['error']})"
        print(f"| {row['name']} | {row['reads']} | {row['inputs']:,} | {row['crashes']} | {row['slowest_s']:.3f} | "
              f"{row['slowest_kind']} | {row['audit']} | {smallest} |", flush=True)
        failed |= bool(row["crashes"] or row["slowest_s"] >= LIMIT_S or row["audit"])
    print(f"# {len(targets)} targets in {time.time() - started:.0f} s; "
          + ("FAILED: a crash, an input of 1 s or more, or an audit event" if failed else "0 crashes, every input under 1 s"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
