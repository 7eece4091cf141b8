"""Fuzz one harness for a while: `python fuzz/run.py HARNESS --seconds N`.

atheris stops at the first finding and libFuzzer's fork mode does not work with it here, so this
runner runs atheris in a child process and, when the child stops on a finding, keeps the input
as fuzz/regressions/HARNESS/<what>-<sha1>, remembers what kind of failure it was (so the next
child steps over it instead of finding it again) and starts a new child with the time left. The
corpus lives in fuzz/corpus/HARNESS/ (git-ignored) and grows across runs; the seeds in
fuzz/seeds/HARNESS/ are read, never written. Each run appends a line to fuzz/corpus/campaigns.jsonl
(harness, runs, cov, ft, seconds, findings, CPU) for the table in fuzz/README.md.

Exit status: 0 no finding, 1 at least one finding (CI fails on it), 2 could not run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent
# libFuzzer's own bounds, the contract's bounds (ARCHITECTURE.md): an input may take at most
# TIMEOUT_S seconds and RSS_LIMIT_MB of memory; inputs up to MAX_LEN bytes.
TIMEOUT_S = 10
RSS_LIMIT_MB = 3072
MAX_LEN = 65536


def signature(exc: BaseException) -> str:
    """What kind of failure this is: the exception and where in ptm it surfaced, without numbers."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "ptmcli" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "-"
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = re.sub(r"/\S+", "PATH", text)
    text = re.sub(r"0x[0-9a-f]+|\d+", "N", text)[:120]
    return f"{type(exc).__name__}|{where}|{text}"


def slug(sig: str) -> str:
    kind, where, text = (sig.split("|") + ["", ""])[:3]
    words = re.sub(r"[^A-Za-z0-9]+", "-", f"{kind}-{text}").strip("-").lower()
    return words[:60] or "finding"


def child(name: str, libfuzzer_args: list[str]) -> None:
    """The atheris process: instrument ptm (and Pillow's pure-Python decoders), then fuzz."""
    import atheris

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(FUZZ_DIR))
    with atheris.instrument_imports(include=["ptmcli", "PIL"]):
        import harnesses

        harnesses.preload()
    harness = harnesses.get(name)
    known_file = Path(os.environ.get("PTM_FUZZ_KNOWN", os.devnull))
    known = set(known_file.read_text().splitlines()) if known_file.is_file() else set()
    seen_file = Path(os.environ.get("PTM_FUZZ_SEEN", os.devnull))

    def test_one_input(data: bytes) -> None:
        try:
            harness(data)
        except Exception as exc:
            sig = signature(exc)
            if sig in known:
                return
            with open(seen_file, "a") as handle:
                handle.write(sig + "\n")
            raise

    warm_up(harness, name)
    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


def warm_up(harness, name: str) -> None:
    """One seed through the harness before libFuzzer's clock starts: the first call does
    once-per-process work (torch's and torchvision's lazy imports, building a model's code path)
    that took over libFuzzer's 10 s per input on a loaded 2-core machine, and was reported as a
    timeout of whatever input came first (weights_classifier timeout-06c2dd3b58, -2e303529f2)."""
    seeds = sorted((FUZZ_DIR / "seeds" / name).glob("*"))
    if seeds:
        try:
            harness(seeds[0].read_bytes())
        except Exception:  # noqa: BLE001 - a seed that breaks the contract is found again by libFuzzer
            pass


def _stats(output: str) -> dict:
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", output)
    if not runs:  # a child that died says no final stats: its last progress line counts
        runs = re.findall(r"^#(\d+)\s", output, re.M)[-1:]
    cov = [int(c) for c in re.findall(r"\bcov: (\d+)", output)]
    ft = [int(c) for c in re.findall(r"\bft: (\d+)", output)]
    return {"runs": sum(map(int, runs)), "cov": max(cov, default=0), "ft": max(ft, default=0)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def campaign(name: str, seconds: int, quiet: bool = False) -> int:
    corpus = FUZZ_DIR / "corpus" / name
    seeds = FUZZ_DIR / "seeds" / name
    state = FUZZ_DIR / "corpus" / f"{name}.state"
    regressions = FUZZ_DIR / "regressions" / name
    for folder in (corpus, state, regressions):
        folder.mkdir(parents=True, exist_ok=True)
    known, seen = state / "known", state / "seen"
    known.touch()
    start = time.monotonic()
    totals = {"runs": 0, "cov": 0, "ft": 0}
    findings = []
    deaths = 0
    while (left := int(seconds - (time.monotonic() - start))) > 2:
        for stale in state.glob("crash-*"):
            stale.unlink()
        seen.write_text("")
        args = [f"-max_total_time={left}", f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}",
                f"-max_len={MAX_LEN}", f"-artifact_prefix={state}/", "-print_final_stats=1",
                str(corpus), *([str(seeds)] if seeds.is_dir() else [])]
        env = {**os.environ, "PTM_FUZZ_KNOWN": str(known), "PTM_FUZZ_SEEN": str(seen),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--", *args], env=env,
                              capture_output=True, text=True, errors="replace")
        output = proc.stdout + proc.stderr
        stats = _stats(output)
        totals["runs"] += stats["runs"]
        totals["cov"] = max(totals["cov"], stats["cov"])
        totals["ft"] = max(totals["ft"], stats["ft"])
        artifacts = [p for p in state.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))]
        if proc.returncode == 0:
            break
        if not artifacts:
            # The child died without saying on which input (killed from outside, or it could
            # not start): keep its words, try again, give up after three.
            deaths += 1
            (state / "died.log").write_text(output[-8000:])
            if deaths >= 3:
                sys.stderr.write(output[-4000:])
                return 2
            continue
        sigs = [s for s in seen.read_text().splitlines() if s]
        for artifact in artifacts:
            kind = artifact.name.split("-", 1)[0]
            sig = sigs[-1] if kind == "crash" and sigs else f"{kind}|-|{kind}"
            data = artifact.read_bytes()
            target = regressions / f"{slug(sig)}-{hashlib.sha1(data).hexdigest()[:10]}"
            target.write_bytes(data)
            artifact.unlink()
            findings.append({"signature": sig, "file": str(target.relative_to(REPO))})
            if kind == "crash":
                with open(known, "a") as handle:
                    handle.write(sig + "\n")
            if not quiet:
                start_at = output.find("=== Uncaught Python exception") if kind == "crash" else -1500
                tail = output[start_at:][:3000]
                print(f"{name}: finding {target.name}\n{tail}", flush=True)
    elapsed = round(time.monotonic() - start, 1)
    record = {"harness": name, **totals, "seconds": elapsed, "findings": len(findings),
              "signatures": sorted({f["signature"] for f in findings}), "cpu": cpu_name(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with open(FUZZ_DIR / "corpus" / "campaigns.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(f"{name}: {totals['runs']:,} runs, cov {totals['cov']}, ft {totals['ft']}, {elapsed} s, "
          f"{len(findings)} finding(s)", flush=True)
    return 1 if findings else 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        rest = sys.argv[3:]
        child(sys.argv[2], rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    sys.path.insert(0, str(FUZZ_DIR))
    import harnesses

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("harness", nargs="+", help=f"one or more of: {', '.join(harnesses.HARNESSES)}, or all")
    parser.add_argument("--seconds", type=int, default=60, help="time per harness")
    parser.add_argument("--quiet", action="store_true", help="no tracebacks of findings")
    args = parser.parse_args()
    names = list(harnesses.HARNESSES) if args.harness == ["all"] else args.harness
    for name in names:
        harnesses.get(name)
    return max(campaign(name, args.seconds, args.quiet) for name in names)


if __name__ == "__main__":
    sys.exit(main())
