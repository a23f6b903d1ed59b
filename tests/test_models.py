"""Models: the registry, output shapes, and the seed network's fixed CTC length."""

import pytest
import torch

from plate_lib.models import ModelError, ModelSpec, build_model, list_models


def spec(**kw) -> ModelSpec:
    base = dict(in_channels=1, height=48, width=144, n_provinces=31, n_ctc_classes=37, hidden=32, ctc_steps=18)
    return ModelSpec(**{**base, **kw})


def test_registry_lists_the_baseline_and_the_compact_model():
    assert {"seed_crnn", "small_crnn"} <= set(list_models())


def test_unknown_model_name_lists_the_registered_ones():
    with pytest.raises(ModelError, match="seed_crnn"):
        build_model("resnet9000", spec())


@pytest.mark.parametrize("name", ["small_crnn", "small_crnn_lite"])
@pytest.mark.parametrize("channels", [1, 3])
def test_small_crnn_outputs_province_logits_and_ctc_steps(name, channels):
    model = build_model(name, spec(in_channels=channels)).eval()
    prov, ctc = model(torch.rand(4, channels, 48, 144))
    assert prov.shape == (4, 31)
    assert ctc.shape == (4, 18, 37)


def test_seed_crnn_reproduces_the_seed_feature_map_with_enough_ctc_steps():
    model = build_model("seed_crnn", spec(height=128, width=400, hidden=256, ctc_steps=16)).eval()
    # the seed squeezed width 101 -> 7 and height 7 -> 1; we keep 101 and 7 but project to 1 + 16 steps
    assert model.linear_w.in_features == 101 and model.linear_w.out_features == 17
    assert model.linear_h.in_features == 7
    with torch.no_grad():
        prov, ctc = model(torch.rand(2, 1, 128, 400))
    assert prov.shape == (2, 31) and ctc.shape == (2, 16, 37)
    # 16 steps fit "A88888" (6 targets + 4 repeats need >= 10) and any 8-character plate's 7 (<= 13)
    assert ctc.shape[1] >= 2 * 7 - 1


def test_an_image_size_the_model_cannot_take_is_a_clear_error():
    with pytest.raises(ModelError, match="cannot take"):
        build_model("seed_crnn", spec(height=8, width=16))


@pytest.mark.parametrize("name, size", [("small_crnn", (48, 144)), ("small_crnn_lite", (48, 144)),
                                        ("seed_crnn", (64, 160))])
def test_folding_batch_norm_into_the_convolutions_keeps_the_outputs(name, size):
    from plate_lib.models import fuse_batchnorm

    torch.manual_seed(0)
    model = build_model(name, ModelSpec(1, *size, 31, 37))
    for m in model.modules():  # trained-looking statistics, not the identity of a fresh layer
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(4, 1, *size)
    with torch.no_grad():
        before = model(x)
        fused = fuse_batchnorm(model)
        after = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
