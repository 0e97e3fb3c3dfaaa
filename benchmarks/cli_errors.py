"""Malformed user files through the installed ``factvae-sk fit``, as a Markdown table.

    PYTHONPATH=. python benchmarks/cli_errors.py [--module] [--cases TEXT]

Runs every case of ``benchmarks/harness/cli.py`` (``CASES``, the table that
``tests/test_cli_files.py`` checks; one malformed file each, made from 150 real
cells of the bundled SNARE-seq data) through the console script in a subprocess, as a user
would, and prints the exit status, whether a traceback was shown, how many lines went to
stderr, and the message. ``--module`` runs ``python -m factvae_sk`` instead.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.harness.cli import CASES, prepare_case, run_cli, write_small_inputs
from factvae_sk import load_snare_cellline


def _snare():
    data = load_snare_cellline()
    hvg = data.genes.highly_variable.to_numpy()
    data.rna_hvg = data.rna[:, hvg]
    data.genes_hvg = data.genes[hvg].reset_index(drop=True)
    return data


def _run_case(case, good, args, work, module):
    args = prepare_case(case, good, args, work)
    start = time.perf_counter()
    done = run_cli(*args, "--epochs", "1", module=module)
    seconds = time.perf_counter() - start
    folder = work / "in"
    message = done.stderr.strip().replace(str(folder) + "/", "").replace(str(work) + "/", "")
    return done.returncode, "Traceback" in done.stderr, message, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="store_true", help="run python -m factvae_sk")
    parser.add_argument("--cases", default="", help="only the cases whose name contains this")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cli_errors_"))
    good = root / "good"
    good.mkdir()
    fit_args = write_small_inputs(good, _snare())
    cases = [case for case in CASES if args.cases in case]
    print("| case | exit | traceback | stderr lines | message | s |")
    print("| --- | --- | --- | --- | --- | --- |")
    clean = 0
    for i, case in enumerate(cases):
        work = root / f"case{i}"
        work.mkdir()
        status, traceback, message, seconds = _run_case(case, good, fit_args, work, args.module)
        lines = len(message.splitlines())
        clean += status == 2 and not traceback and lines == 1
        shown = message.replace("|", "\\|").replace("\n", " / ")
        print(f"| {case} | {status} | {'yes' if traceback else 'no'} | {lines} | {shown} | "
              f"{seconds:.1f} |")  # fmt: skip
    print(f"\n{clean} of {len(cases)} cases: exit 2, one line, no traceback.")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
