"""What torchvision's own builders do for their weights beyond `get_model(name, weights=None)`,
and its ImageNet class names: the only place model names are tested (tests/test_registry.py checks
every key is a torchvision model and every build against torchvision's own for its weights)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch


@lru_cache(maxsize=1)
def imagenet_categories() -> list[str]:
    """torchvision's ImageNet class names, read from its source without importing it.

    Importing torchvision costs over a second (it pulls in torch._dynamo); listing models and
    naming one need only this list, so the offline path starts that much sooner.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.submodule_search_locations:
        meta = os.path.join(list(spec.submodule_search_locations)[0], "models", "_meta.py")
        try:
            for node in ast.parse(open(meta, encoding="utf-8").read()).body:
                if isinstance(node, ast.Assign) and any(
                    getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets
                ):
                    names = ast.literal_eval(node.value)
                    if isinstance(names, list) and len(names) == 1000:
                        return names
        except (OSError, SyntaxError, ValueError):
            pass
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _densenet_keys(state_dict: dict) -> dict:
    # torchvision's DenseNet checkpoints predate the module names ("norm.1" vs "norm1");
    # torchvision itself rewrites them with this pattern in densenet._load_state_dict.
    import re

    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    fixed = {}
    for key, value in state_dict.items():
        match = pattern.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def _drop_aux_heads(model) -> None:
    # torchvision's inception_v3/googlenet builders load with aux heads, then discard them.
    model.aux_logits = False
    for name in ("AuxLogits", "aux1", "aux2"):
        if hasattr(model, name):
            setattr(model, name, None)


@dataclass(frozen=True)
class TorchvisionQuirk:
    """What torchvision's builder does, given its weights, beyond `get_model(name, weights=None)`."""

    # Builder arguments it derives from the weights' metadata.
    build_kwargs: Callable[[dict], dict] = field(default=lambda meta: {}, compare=False)
    fix_state_dict: Callable[[dict], dict] | None = field(default=None, compare=False)
    after_load: Callable[["torch.nn.Module"], None] | None = field(default=None, compare=False)


_AUX_HEADS = TorchvisionQuirk(
    build_kwargs=lambda meta: {"transform_input": True, "aux_logits": True, "init_weights": False},
    after_load=_drop_aux_heads,
)
_IMAGE_SIZE = TorchvisionQuirk(build_kwargs=lambda meta: {"image_size": meta["min_size"][0]})

# The one place model names are tested: tests/test_registry.py checks every key is a torchvision
# model and every build against torchvision's own for its weights.
TORCHVISION_QUIRKS: dict[str, TorchvisionQuirk] = {
    "inception_v3": _AUX_HEADS,
    "googlenet": _AUX_HEADS,
    **dict.fromkeys(("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"), _IMAGE_SIZE),
    "maxvit_t": TorchvisionQuirk(build_kwargs=lambda meta: {"input_size": tuple(meta["min_size"])}),
    **dict.fromkeys(("densenet121", "densenet161", "densenet169", "densenet201"),
                    TorchvisionQuirk(fix_state_dict=_densenet_keys)),
}
_NO_QUIRK = TorchvisionQuirk()


def torchvision_quirk(name: str) -> TorchvisionQuirk:
    return TORCHVISION_QUIRKS.get(name, _NO_QUIRK)
