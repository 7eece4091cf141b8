"""The CycleGAN generator: published key layouts, strict loading, sizes, value ranges, memory errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from zebra_helpers import save_generator

from ptmcli.errors import WeightsInvalid
from ptmcli.models import generator
from ptmcli.models.cyclegan import ResNetGenerator, load_generator
from ptmcli.models.generator import Zebrafier, processed_size
from ptmcli.models.registry import BOOK_GENERATOR_SHAPE
from ptmcli.pipeline.zebrafy import translate_batches

CPU = torch.device("cpu")


def test_key_layout_is_the_books():
    # dlwpt-code p1ch2/3_cyclegan.ipynb: self.model = nn.Sequential(pad, conv, norm, relu, ...);
    # nine ResNetBlocks at indices 10..18 with conv_block.1 and conv_block.5 as their convolutions.
    with torch.device("meta"):
        generator = ResNetGenerator()
    keys = list(generator.state_dict())
    convs = ["model.1", "model.4", "model.7"]
    convs += [f"model.{i}.conv_block.{j}" for i in range(10, 19) for j in (1, 5)]
    convs += ["model.19", "model.22", "model.26"]
    assert keys == [f"{c}.{p}" for c in convs for p in ("weight", "bias")]
    assert sum(p.numel() for p in generator.parameters()) == 11_378_179
    assert tuple(generator.state_dict()["model.19.weight"].shape) == (256, 128, 3, 3)  # ConvTranspose2d
    assert tuple(generator.state_dict()["model.26.weight"].shape) == (3, 64, 7, 7)


@pytest.mark.parametrize("layout", ["book", "cyclegan"])
def test_both_published_layouts_load_strictly(tmp_path, layout):
    path = save_generator(tmp_path / f"{layout}.pth", layout)
    model = load_generator(path)
    torch.manual_seed(0)
    reference = ResNetGenerator()  # same seed as save_generator: the same weights
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not any(k.endswith(("running_mean", "running_var")) for k in model.state_dict())


def test_only_instance_norm_extras_are_dropped(tmp_path):
    state = torch.load(save_generator(tmp_path / "g.pth", ngf=8, n_blocks=2), weights_only=True)
    state["model.1.running_mean"] = torch.zeros(8)  # a convolution has no running stats
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsInvalid, match=r"unexpected: model\.1\.running_mean"):
        load_generator(tmp_path / "bad.pth")


def test_wrong_layout_is_refused_by_key_name(tmp_path):
    state = torch.load(save_generator(tmp_path / "g.pth", ngf=8, n_blocks=2), weights_only=True)
    state["model.20.weight"] = state.pop("model.19.weight")  # the last conv (2 blocks), one index off
    torch.save(state, tmp_path / "shifted.pth")
    with pytest.raises(WeightsInvalid) as caught:
        load_generator(tmp_path / "shifted.pth")
    assert "missing: model.19.weight" in caught.value.message
    assert "unexpected: model.20.weight" in caught.value.message

    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsInvalid, match=r"missing: model\.1\.weight.*unexpected: fc\.weight"):
        load_generator(tmp_path / "other.pth")


def test_required_shape_refuses_a_smaller_generator(tmp_path):
    path = save_generator(tmp_path / "small.pth", ngf=8, n_blocks=2)
    with pytest.raises(WeightsInvalid, match="8 base channels and 2 residual blocks"):
        load_generator(path, require_shape=BOOK_GENERATOR_SHAPE)


@pytest.mark.parametrize("size", [(257, 383), (383, 257), (300, 256), (256, 256), (5, 900), (1, 1)])
def test_processed_size_matches_torchvision_resize(size):
    from PIL import Image
    from torchvision.transforms import Resize

    expected = Resize(256)(Image.new("RGB", size)).size
    assert processed_size(*size, 256) == expected
    assert processed_size(*size, 0) == size


@pytest.fixture
def small_zebra(tmp_path):
    return Zebrafier(save_generator(tmp_path / "g.pth", ngf=4, n_blocks=1), CPU, short_side=0)


@pytest.mark.parametrize("height, width", [(383, 257), (8, 8), (5, 3), (1, 1), (64, 100)])
def test_output_has_exactly_the_input_size(small_zebra, height, width):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    outputs = small_zebra.translate(arrays)
    assert [o.shape for o in outputs] == [(height, width, 3)] * 2
    assert all(o.dtype == np.uint8 for o in outputs)


def test_inputs_are_scaled_to_minus_one_one_and_outputs_back(small_zebra):
    seen = {}

    class Identity(torch.nn.Module):
        def forward(self, x):
            seen["min"], seen["max"] = x.min().item(), x.max().item()
            return x

    small_zebra.model = Identity()
    pixels = np.tile(np.arange(256, dtype=np.uint8), 48).reshape(64, 64, 3)
    [out] = small_zebra.translate([pixels])
    assert (seen["min"], seen["max"]) == (-1.0, 1.0)
    assert np.array_equal(out, pixels)


def test_batches_are_split_by_pixel_budget(small_zebra):
    calls = []
    original = small_zebra._forward
    small_zebra._forward = lambda arrays: calls.append(len(arrays)) or original(arrays)
    small_zebra.pixel_budget = 3 * 64 * 64
    small_zebra.translate([np.zeros((64, 64, 3), np.uint8)] * 7)
    assert calls == [3, 3, 1]


def test_out_of_memory_becomes_a_per_input_message(small_zebra, make_image, tmp_path):
    good = make_image("ok.png", size=(32, 24))
    small_zebra.device = torch.device("cuda")  # only the message and cache release look at it

    def no_memory(arrays):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    small_zebra._forward = no_memory
    from ptmcli.pipeline.inputs import InputItem

    [[(_, result)]] = list(translate_batches(small_zebra, [InputItem(str(good))], batch_size=4))
    assert not result.ok
    assert "out of GPU memory at 32x24" in result.error
    assert "--size" in result.error and "--device cpu" in result.error


def test_too_large_for_32_bit_indexing_is_a_per_input_message(small_zebra, make_image):
    from ptmcli.pipeline.inputs import InputItem

    def too_big(arrays):
        raise RuntimeError("input tensor must fit into 32-bit index math")

    small_zebra._forward = too_big
    image = make_image("a.png", size=(20, 10))
    [[(_, result)]] = list(translate_batches(small_zebra, [InputItem(str(image))], batch_size=1))
    assert "too large for the CPU's kernels at 20x10; try a smaller --size" in result.error
    assert "--device cpu" not in result.error  # already on the CPU


def test_a_photo_larger_than_free_memory_is_refused_before_it_starts(small_zebra, make_image, monkeypatch):
    from ptmcli.pipeline.inputs import InputItem

    monkeypatch.setattr(generator, "available_memory", lambda: 100 * 2**20)  # 100 MiB free
    big, small = make_image("big.png", size=(3000, 2000)), make_image("small.png", size=(40, 30))
    batches = translate_batches(small_zebra, [InputItem(str(big)), InputItem(str(small))], batch_size=4)
    positions, results = zip(*(pair for batch in batches for pair in batch))
    assert positions == (0, 1)
    assert "out of CPU memory at 3000x2000 (needs about" in results[0].error
    assert "try a smaller --size" in results[0].error
    assert results[1].ok and results[1].image.shape == (30, 40, 3)


def test_other_runtime_errors_are_not_hidden(small_zebra, make_image):
    from ptmcli.pipeline.inputs import InputItem

    def broken(arrays):
        raise RuntimeError("shape mismatch somewhere")

    small_zebra._forward = broken
    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(translate_batches(small_zebra, [InputItem(str(make_image("a.png")))], batch_size=1))


@pytest.mark.slow
def test_a_3000_by_2000_photo_runs_at_full_resolution_on_the_cpu(small_zebra):
    photo = np.full((2000, 3000, 3), 128, dtype=np.uint8)
    [out] = small_zebra.translate([photo])
    assert out.shape == (2000, 3000, 3)
