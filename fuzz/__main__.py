"""Run every harness: ``python3 -m fuzz --seconds 60`` (or ``--runs N``).

Each harness runs in its own process (forked from this one, which has imported the
instrumented library already), one at a time, on its corpus folder (where it first
writes its seeds, from ``spec/vectors``); the time is split evenly between them
(``--each`` gives each its own). A table gives, per harness, the inputs run, the speed,
the code edges covered and the findings. A finding (an exception that is not an
``AgentAuthError``, a hang, or running out of memory) is kept in ``fuzz/findings/``: the
input, and the traceback beside it. The exit status is 1 if anything was found.
"""

from __future__ import annotations

import argparse
import os
import re
import runpy
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import HARNESSES, corpus

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = Path(__file__).resolve().parent / "findings"
_STAT = re.compile(rb"^stat::(\w+):\s*(\d+)", re.MULTILINE)
_COVERAGE = re.compile(rb" cov: (\d+) ")
_WRITTEN = re.compile(rb"Test unit written to (\S+)")


def fuzz(name: str, limit: list[str], corpus_dir: Path, findings: Path,
         extra: list[str]) -> tuple[int, float, int, list[Path]]:
    """Run one harness; return (inputs run, inputs per second, code edges covered,
    findings kept)."""
    findings.mkdir(parents=True, exist_ok=True)
    folder = corpus_dir / name  # the harness writes its seeds there first
    words = Path(__file__).with_name(f"{name}.dict")  # tokens the mutator may splice in
    extra = [*extra, f"-dict={words}"] if words.exists() else extra
    argv = [*limit, "-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1",
            f"-artifact_prefix={findings}{os.sep}{name}-", *extra, str(folder)]
    started = time.monotonic()
    status, log = _run_harness(name, argv)
    elapsed = time.monotonic() - started
    stats = {k.decode(): int(v) for k, v in _STAT.findall(log)}
    runs = stats.get("number_of_executed_units", 0)
    speed = stats.get("average_exec_per_sec", 0) or runs / max(elapsed, 1e-9)
    edges = [int(n) for n in _COVERAGE.findall(log)]
    kept = [Path(p.decode()) for p in _WRITTEN.findall(log)]
    if status != 0 and not kept:  # died without an input to show: keep the log
        kept = [findings / f"{name}-failed-{int(time.time())}"]
        kept[0].write_bytes(b"")
    for path in kept:
        path.with_name(path.name + ".txt").write_bytes(log)
    return runs, speed, max(edges, default=0), kept


def _run_harness(name: str, argv: list[str]) -> tuple[int, bytes]:
    """Run ``python3 -m fuzz.<name> argv`` in a child process; return its exit status and
    everything it wrote. The child is forked from this process, which has imported (and so
    instrumented) the library already: that import is most of a short run's time, and each
    harness would otherwise pay it again."""
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: the harness's own process
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            os.chdir(ROOT)
            sys.argv = ["-m", *argv]
            try:
                runpy.run_module(f"{__package__}.{name}", run_name="__main__",
                                 alter_sys=True)
            except SystemExit:
                raise  # the interpreter's exit, where libFuzzer keeps the input at fault
            except BaseException:  # a finding outside libFuzzer's watch: its traceback
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            os._exit(0)  # libFuzzer ends the process itself: never reached
        _, status = os.waitpid(pid, 0)
        log.seek(0)
        return os.waitstatus_to_exitcode(status), log.read()


def main(argv: list[str] | None = None) -> int:
    """Run the harnesses and print the table."""
    parser = argparse.ArgumentParser(prog="python3 -m fuzz", description=__doc__)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, default=60.0,
                        help="total time, split evenly (default 60)")
    budget.add_argument("--each", type=float, help="seconds for each harness")
    budget.add_argument("--runs", type=int, help="inputs for each harness")
    parser.add_argument("--only", default="", help="harnesses, comma-separated")
    parser.add_argument("--corpus", type=Path, default=corpus.DEFAULT)
    parser.add_argument("--findings", type=Path, default=FINDINGS)
    parser.add_argument("--seed", type=int, help="the fuzzer's random seed (repeatable runs)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(HARNESSES)
    unknown = set(names) - set(HARNESSES)
    if unknown:
        parser.error(f"unknown harness(es): {', '.join(sorted(unknown))}")
    if args.runs is not None:
        limit = [f"-runs={args.runs}"]
    else:
        each = args.each if args.each is not None else args.seconds / len(names)
        limit = [f"-max_total_time={max(1, round(each))}"]
    extra = [] if args.seed is None else [f"-seed={args.seed}"]
    print(f"{'harness':<12} {'inputs':>12} {'inputs/s':>10} {'edges':>6} {'findings':>8}")
    total, found = 0, []
    for name in names:
        runs, speed, edges, kept = fuzz(name, limit, args.corpus, args.findings, extra)
        total += runs
        found += kept
        print(f"{name:<12} {runs:>12} {speed:>10.0f} {edges:>6} {len(kept):>8}", flush=True)
    print(f"{'all':<12} {total:>12} {'':>10} {'':>6} {len(found):>8}")
    for path in found:
        print(f"finding: {path} (traceback in {path.name}.txt)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
