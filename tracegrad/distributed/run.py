"""The launcher: ``python -m tracegrad.distributed.run -n 2 script.py [args]`` runs `script.py` on 2 ranks.

A thin wrapper over ``mpirun`` (the one the ``tracegrad[mpi]`` extra installs next to this Python, else the one
on PATH) that adds what running tracegrad needs, so that nobody has to remember it:

- the ranks run this Python (`sys.executable`), with one BLAS/OpenMP thread each (``--threads`` to change it):
  several ranks on one machine otherwise each start a thread per core and slow each other down;
- ``--bind-to none``: Open MPI pins each rank to a core by default, and then the background process that compiles
  a rank's kernels (`runtime/tiered.py`) would share that rank's core instead of using an idle one;
- ``--oversubscribe`` on one host (more ranks than cores is allowed: tests run 2 ranks on any machine); with a
  hostfile, its slots decide;
- ``--allow-run-as-root`` when run as root (containers): Open MPI refuses otherwise;
- ``-x`` for the thread variables, ``PYTHONPATH`` and ``TRACEGRAD_*``, so ranks on other hosts get them too.

Several hosts: ``--hostfile hosts`` (mpirun's format, a line per host: ``node1 slots=2``), with tracegrad installed
at the same path on each; anything after ``--mpi`` goes to mpirun as is. ``--dry-run`` prints the command.
The exit status is mpirun's: non-zero when any rank failed.

>>> cmd = mpirun_command(2, ["train.py", "--epochs", "3"], mpirun="mpirun")
>>> cmd[:3], cmd[-3:]
(['mpirun', '-n', '2'], ['train.py', '--epochs', '3'])
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def find_mpirun() -> str | None:
    """The mpirun of this Python's environment (``pip install 'tracegrad[mpi]'`` puts Open MPI's there), else
    the first on PATH, else None."""
    here = Path(sys.executable).parent / "mpirun"
    if here.exists():
        return str(here)
    return shutil.which("mpirun")


def mpirun_command(n: int, program: list, hostfile: str | None = None, threads: int = 1, mpirun: str | None = None,
                   extra: tuple = (), env: dict | None = None) -> list:
    """The mpirun command line that runs ``python *program`` on `n` ranks (see the module docstring)."""
    mpirun = mpirun or find_mpirun()
    if mpirun is None:
        raise FileNotFoundError("mpirun not found: install MPI with pip install 'tracegrad[mpi]' (mpi4py and Open "
                                "MPI, whose mpirun lands next to this Python), or pass --mpirun PATH")
    env = os.environ if env is None else env
    cmd = [mpirun, "-n", str(n)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += ["--hostfile", hostfile] if hostfile else ["--oversubscribe"]
    cmd += ["--bind-to", "none"]
    for var in _THREAD_VARS:
        cmd += ["-x", f"{var}={threads}"]
    for var in sorted(env):
        if var == "PYTHONPATH" or var.startswith("TRACEGRAD_"):
            cmd += ["-x", var]
    return cmd + list(extra) + [sys.executable] + list(program)


_VALUED = ("-n", "--nproc", "--hostfile", "--threads", "--mpirun")


def _split(argv: list) -> tuple:
    """(the launcher's arguments, the program: ``[script, args...]`` or ``["-m", module, args...]``)."""
    k = 0
    while k < len(argv):
        a = argv[k]
        if a == "-m":
            return argv[:k], argv[k:]
        if not a.startswith("-"):
            return argv[:k], argv[k:]
        k += 2 if a in _VALUED else 1
    return argv, []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracegrad.distributed.run",
                                     usage="%(prog)s [-n N] [--hostfile FILE] [--threads T] [--mpirun PATH] "
                                           "[--dry-run] (script.py | -m module) [args...] [--mpi MPIRUN_ARGS...]",
                                     description="Run a tracegrad script on several ranks with mpirun.")
    parser.add_argument("-n", "--nproc", type=int, default=2, help="how many ranks (default 2)")
    parser.add_argument("--hostfile", help="mpirun's hostfile: the hosts and their slots (several machines)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per rank (default 1)")
    parser.add_argument("--mpirun", help="the mpirun to use (default: the one next to this Python, else PATH's)")
    parser.add_argument("--dry-run", action="store_true", help="print the mpirun command instead of running it")
    mine, program = _split(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(mine)
    extra: list = []
    if "--mpi" in program:  # arguments after --mpi go to mpirun
        k = program.index("--mpi")
        program, extra = program[:k], program[k + 1:]
    if not program or program == ["-m"]:
        parser.error("the script to run is missing (python -m tracegrad.distributed.run -n 2 script.py)")
    if args.nproc < 1:
        parser.error(f"-n must be at least 1, got {args.nproc}")
    try:
        cmd = mpirun_command(args.nproc, program, args.hostfile, args.threads, args.mpirun, tuple(extra))
    except FileNotFoundError as e:
        print(f"tracegrad.distributed.run: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
