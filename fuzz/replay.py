"""Replay seeds and regression files through the harnesses, no fuzzing: `python fuzz/replay.py`.

Deterministic and quick (CI runs it before fuzzing). By default every file of fuzz/seeds/ and
fuzz/regressions/ goes through every harness (a file found by one reader is a hostile file for
all of them); `--own` limits each harness to its own folders. Exit status 1 if any harness breaks
the reader contract on any file, with the file and the failure named.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(FUZZ_DIR.parent))
sys.path.insert(0, str(FUZZ_DIR))

import harnesses  # noqa: E402 - after the path is set


def files_of(name: str | None) -> list[Path]:
    folders = [FUZZ_DIR / "seeds", FUZZ_DIR / "regressions"]
    if name is not None:
        folders = [folder / name for folder in folders]
    return sorted(p for folder in folders if folder.is_dir() for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("harness", nargs="*", help="harnesses to replay (default: all)")
    parser.add_argument("--own", action="store_true", help="each harness only its own seeds and regressions")
    parser.add_argument("--verbose", "-v", action="store_true", help="print the traceback of each failure")
    args = parser.parse_args()
    names = args.harness or list(harnesses.HARNESSES)
    failures = 0
    shared = None if args.own else files_of(None)
    for name in names:
        harness = harnesses.get(name)
        files = files_of(name) if args.own else shared
        start = time.monotonic()
        for path in files:
            try:
                harness(path.read_bytes())
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next file
                failures += 1
                print(f"FAIL {name} {path.relative_to(FUZZ_DIR)}: {type(exc).__name__}: "
                      f"{(str(exc).splitlines() or [''])[0][:200]}")
                if args.verbose:
                    traceback.print_exc()
        print(f"{name}: {len(files)} files, {time.monotonic() - start:.1f} s", flush=True)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
