"""benchmarks/bench_classify.py --device cuda runs every peer on that device (issue 18, item 7)."""

from __future__ import annotations

import sys
import types

from conftest import ROOT


def test_bench_classify_passes_the_device_to_the_book_and_timm(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_classify

    calls = []

    def run_json(script, *args, **kwargs):
        calls.append((script, args))
        return {"img_s": 1.0, "runtime": "torch", "top1": []}

    monkeypatch.setattr(bench_classify, "run_json", run_json)
    monkeypatch.setattr(bench_classify, "make_jpegs", lambda count: tmp_path)
    monkeypatch.setattr(bench_classify, "resnet101_weights", lambda: tmp_path / "resnet101.pth")
    monkeypatch.setitem(sys.modules, "timm", types.ModuleType("timm"))
    monkeypatch.setattr(sys, "argv", ["bench_classify.py", "--device", "cuda:1", "--images", "8"])
    bench_classify.main()
    peers = {bench_classify.BOOK: "book", bench_classify.TIMM: "timm", bench_classify.PTM: "ptm"}
    ran = sorted({peers[script] for script, _ in calls})
    assert ran == ["book", "ptm", "timm"]
    assert all("cuda:1" in args for _, args in calls), calls
