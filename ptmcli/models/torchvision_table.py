"""Make the table of torchvision's ImageNet classifiers (torchvision_classifiers.json) from the
installed torchvision's own `Weights` metadata, so looking a model up needs no torchvision import.

    python -m ptmcli.models.torchvision_table --write   # regenerate the committed table
    python -m ptmcli.models.torchvision_table --check   # exit 1 if it differs from the installed torchvision

tests/test_registry.py regenerates it and compares, so the table stays what torchvision says.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).with_name("torchvision_classifiers.json")


@lru_cache(maxsize=1)
def committed() -> tuple[str, dict[str, dict]]:
    """(the torchvision version the table was made from, name -> entry), read once."""
    data = json.loads(TABLE.read_text(encoding="utf-8"))
    return data["torchvision_version"], data["classifiers"]


def installed_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("torchvision")


def installed_names() -> list[str]:
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _sha256_prefix(filename: str) -> str | None:
    stem = filename.rsplit(".", 1)[0]
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    return prefix if len(prefix) >= 8 and set(prefix) <= set(string.hexdigits) else None


def _head_name(name: str, build_kwargs: dict, num_classes: int) -> str | None:
    """The last Linear layer with one output per class, found once here (on the meta device) and
    committed, so nothing guesses at run time; its input is the embedding."""
    from torch import nn
    from torchvision.models import get_model

    from ptmcli.models.checkpoints import build_on_meta
    from ptmcli.models.torchvision_quirks import torchvision_quirk

    model = build_on_meta(lambda: get_model(name, weights=None, **build_kwargs))
    after_load = torchvision_quirk(name).after_load
    if after_load is not None:
        after_load(model)
    heads = [module_name for module_name, module in model.named_modules()
             if isinstance(module, nn.Linear) and module.out_features == num_classes]
    return heads[-1] if heads else None


def row(name: str) -> dict:
    """One classifier's entry, from its DEFAULT weights."""
    from torchvision.models import get_model_weights

    from ptmcli.models.torchvision_quirks import imagenet_categories, torchvision_quirk

    weights = get_model_weights(name).DEFAULT
    meta = weights.meta
    if list(meta["categories"]) != imagenet_categories():
        raise ValueError(f"{name}: its classes are not torchvision's ImageNet list")
    transforms = weights.transforms()
    metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
    build_kwargs = {"num_classes": len(meta["categories"]), **torchvision_quirk(name).build_kwargs(meta)}
    filename = weights.url.rsplit("/", 1)[-1]
    return {
        "weights": f"{type(weights).__name__}.{weights.name}",
        "filename": filename,
        "url": weights.url,
        "sha256_prefix": _sha256_prefix(filename),
        "file_size_mb": meta.get("_file_size"),
        "resize": int(transforms.resize_size[0]),
        "crop": int(transforms.crop_size[0]),
        "mean": tuple(float(v) for v in transforms.mean),
        "std": tuple(float(v) for v in transforms.std),
        "interpolation": transforms.interpolation.value,
        "num_params": meta.get("num_params"),
        "acc1": metrics.get("acc@1"),
        "acc5": metrics.get("acc@5"),
        "gflops": meta.get("_ops"),
        "head": _head_name(name, build_kwargs, len(meta["categories"])),
        "build_kwargs": build_kwargs,
        "recipe": meta.get("recipe", ""),
        "license": meta.get("license"),
    }


def rows() -> dict[str, dict]:
    """Every installed classifier's entry, as the committed JSON holds it (tuples become lists)."""
    return json.loads(json.dumps({name: row(name) for name in installed_names()}))


def render(table: dict[str, dict], version: str) -> str:
    data = {"generated_by": "python -m ptmcli.models.torchvision_table --write",
            "torchvision_version": version, "classifiers": table}
    return json.dumps(data, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptmcli.models.torchvision_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"rewrite {TABLE.name}")
    action.add_argument("--check", action="store_true", help=f"exit 1 if {TABLE.name} is out of date")
    args = parser.parse_args(argv)
    text = render(rows(), installed_version())
    if args.write:
        from ptmcli.atomic import replacing

        with replacing(TABLE) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(TABLE)
        return 0
    if TABLE.read_text(encoding="utf-8") != text:
        print(f"{TABLE} is out of date: run python -m ptmcli.models.torchvision_table --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
