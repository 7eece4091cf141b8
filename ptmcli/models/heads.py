"""The classifier layer a spec names (`ModelSpec.head`), and the width of the embedding it reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptmcli.errors import UsageProblem

if TYPE_CHECKING:
    from torch import nn

    from ptmcli.models.spec import ModelSpec


def _no_head(spec: "ModelSpec") -> UsageProblem:
    return UsageProblem(
        f"{spec.name} has no Linear classifier layer whose input is an embedding",
        ["--save-features needs a model whose classifier is a Linear layer (resnet*, efficientnet*, vit_*, ...)"],
    )


def head_module(model: "nn.Module", spec: "ModelSpec") -> "nn.Linear":
    """`spec.head` in `model`: the Linear layer whose input is the embedding."""
    if spec.head is None:
        raise _no_head(spec)
    return model.get_submodule(spec.head)


def feature_dim(spec: "ModelSpec") -> int:
    """Width of the embedding the head reads (2048 for ResNet101), from the architecture alone:
    built on the meta device, so it costs no memory and needs no weights."""
    from ptmcli.models.checkpoints import build_on_meta

    if spec.head is None:
        raise _no_head(spec)
    model = build_on_meta(spec.build)
    if spec.after_load is not None:
        spec.after_load(model)
    return head_module(model, spec).in_features
