"""The torchvision adapter: a `ModelSpec` from one row of the committed torchvision table (or a row
made live from the installed torchvision), building through `torchvision.models.get_model`."""

from __future__ import annotations

from ptmcli.errors import UnknownModel
from ptmcli.models.spec import CLASSIFY, ModelSpec, Preprocess, WeightFile
from ptmcli.models.torchvision_quirks import imagenet_categories, torchvision_quirk

_TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); see each model's recipe for its training data terms"


def torchvision_spec(name: str, row: dict) -> ModelSpec:
    """A spec from one row of the torchvision table (or one made live from installed metadata)."""
    quirk = torchvision_quirk(name)
    kwargs = dict(row["build_kwargs"])

    def build():
        from torchvision.models import get_model as torchvision_model

        try:
            return torchvision_model(name, weights=None, **kwargs)
        except ValueError:
            # The table may list a model an older torchvision does not have.
            import torchvision

            raise UnknownModel(
                f"{name} is not in the installed torchvision {torchvision.__version__}",
                ["upgrade torchvision (pip install -U torchvision), or pick another model from `ptm models`"],
            ) from None

    size_mb = row.get("file_size_mb")
    license_text = _TORCHVISION_LICENSE + (f"; weights: {row['license']}" if row.get("license") else "")
    return ModelSpec(
        name=name,
        task=CLASSIFY,
        weights=WeightFile(
            name=name,
            filename=row["filename"],
            url=row["url"],
            sha256_prefix=row["sha256_prefix"],
            license=license_text,
            source=f"torchvision {row['weights']} ({row['recipe']})",
            install_hint=f"about {size_mb:.0f} MB" if size_mb else "",
        ),
        preprocess=Preprocess(
            resize=row["resize"], crop=row["crop"], mean=tuple(row["mean"]), std=tuple(row["std"]),
            interpolation=row["interpolation"],
        ),
        build=build,
        categories=imagenet_categories,
        head=row["head"],
        num_params=row["num_params"],
        acc1=row["acc1"],
        acc5=row["acc5"],
        gflops=row["gflops"],
        fix_state_dict=quirk.fix_state_dict,
        after_load=quirk.after_load,
    )
