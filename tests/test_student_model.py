"""The student network: parameter budget, feature pyramid, output contract, export and weight loading."""

import warnings

import pytest
import timm
import torch

from distillery.student.config import TrainConfig
from distillery.student.model import build_encoder, build_student, count_parameters


@pytest.fixture(scope="module")
def efficientvit():
    return build_student(TrainConfig(backbone="efficientvit_b1", encoder_weights="random")).eval()


def test_efficientvit_student_has_the_reference_parameter_budget(efficientvit):
    total = count_parameters(efficientvit)
    encoder = count_parameters(efficientvit.encoder)
    assert abs(total - 5.31e6) / 5.31e6 < 0.03
    assert encoder == pytest.approx(4.64e6, rel=0.01)
    assert total - encoder == pytest.approx(0.67e6, rel=0.05)


def test_encoders_give_four_strides_with_the_expected_channels():
    for backbone, channels in (("efficientvit_b1", [32, 64, 128, 256]), ("mobilenetv3_small", [16, 24, 48, 576])):
        encoder, source = build_encoder(backbone, "random")
        assert encoder.feature_info.channels() == channels and source == "random"
        assert encoder.feature_info.reduction() == [4, 8, 16, 32]


def test_outputs_at_the_deployment_size(efficientvit):
    with torch.no_grad():
        out = efficientvit(torch.rand(2, 3, 240, 320))
    assert out["depth"].shape == (2, 1, 240, 320) and out["segmentation"].shape == (2, 6, 240, 320)
    assert (out["depth"] > 0).all() and all(torch.isfinite(v).all() for v in out.values())
    assert out["depth"].mean().item() == pytest.approx(2.0, rel=0.3)  # depth_init_m, before any training


@pytest.mark.parametrize("size", [(64, 96), (96, 128), (48, 64)])
def test_any_size_works_for_mobilenet_and_keeps_the_input_size(size):
    model = build_student(TrainConfig(backbone="mobilenetv3_small", encoder_weights="random")).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert out["depth"].shape[-2:] == size and out["segmentation"].shape == (1, 6, *size)


def test_backward_reaches_every_parameter():
    model = build_student(TrainConfig(backbone="mobilenetv3_small", encoder_weights="random")).train()
    out = model(torch.rand(2, 3, 64, 96))
    (out["depth"].mean() + out["segmentation"].mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_exports_without_data_dependent_control_flow(efficientvit):
    x = torch.rand(1, 3, 240, 320)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        exported = torch.export.export(efficientvit, (x,), strict=False)
    with torch.no_grad():
        reference, got = efficientvit(x), exported.module()(x)
    assert torch.allclose(got["depth"], reference["depth"], atol=1e-5)
    assert torch.allclose(got["segmentation"], reference["segmentation"], atol=1e-4)


def test_encoder_loads_a_local_weight_file(tmp_path):
    classifier = timm.create_model("mobilenetv3_small_100", pretrained=False)
    path = tmp_path / "weights.pth"
    torch.save(classifier.state_dict(), path)
    model = build_student(TrainConfig(backbone="mobilenetv3_small", encoder_weights=str(path)))
    assert model.encoder_weights.startswith(f"file {path} (sha256 ")
    assert torch.equal(model.encoder.state_dict()["conv_stem.weight"], classifier.state_dict()["conv_stem.weight"])
    with pytest.raises(FileNotFoundError):
        build_student(TrainConfig(backbone="mobilenetv3_small", encoder_weights=str(tmp_path / "missing.pth")))


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_encoder("resnet50", "random")


def test_onnx_export_with_the_deployment_contract(efficientvit, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "student.onnx"
    x = torch.rand(1, 3, 240, 320)
    torch.onnx.export(efficientvit, (x,), str(path), input_names=["rgb"], output_names=["depth", "segmentation"],
                      opset_version=17, dynamic_axes={"rgb": {0: "N"}, "depth": {0: "N"}, "segmentation": {0: "N"}},
                      dynamo=False)
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    # The attention is channels-first: its only Transposes are the keys' (and their sums'), which ONNX
    # Runtime and TensorRT fold into the MatMul that reads them; no activation map is ever transposed.
    consumers = {name: n.op_type for n in graph.graph.node for name in n.input}
    transposes = [n for n in graph.graph.node if n.op_type == "Transpose"]
    assert len(transposes) == 14 and all(consumers[n.output[0]] == "MatMul" for n in transposes)
    assert not [n for n in graph.graph.node if n.op_type == "Pad"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = torch.rand(2, 3, 240, 320)
    depth, seg = session.run(["depth", "segmentation"], {"rgb": batch.numpy()})
    with torch.no_grad():
        reference = efficientvit(batch)
    assert depth.shape == (2, 1, 240, 320) and seg.shape == (2, 6, 240, 320)
    assert abs(depth - reference["depth"].numpy()).max() < 1e-3


def test_channel_first_attention_computes_timms_lite_mla():
    """The student's encoder runs every LiteMLA channels-first; switched back to timm's own forward,
    the same weights give the same features."""
    from timm.models.efficientvit_mit import LiteMLA

    from distillery.student.attention import ChannelFirstLiteMLA

    torch.manual_seed(0)
    encoder, _ = build_encoder("efficientvit_b1", "random")
    encoder.eval()
    blocks = [m for m in encoder.modules() if isinstance(m, LiteMLA)]
    assert len(blocks) == 7 and all(type(m) is ChannelFirstLiteMLA for m in blocks)
    x = torch.rand(2, 3, 240, 320)
    with torch.no_grad():
        ours = encoder(x)
        for block in blocks:
            block.__class__ = LiteMLA
        timms = encoder(x)
    for got, expected in zip(ours, timms):
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("backbone", ["efficientvit_b1", "mobilenetv3_small"])
def test_folding_batch_norms_keeps_the_outputs(backbone):
    """The evaluation's inference model: every plain BatchNorm after a convolution folded into it, outputs
    unchanged. BatchNorm statistics are randomised first, so that a wrong fold cannot pass as identity."""
    from distillery.student.fold import fold_batch_norms

    torch.manual_seed(0)
    model = build_student(TrainConfig(backbone=backbone, encoder_weights="random"))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.2, 0.2)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model)
    model.eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        before = model(x)
        folded = fold_batch_norms(model)
        after = model(x)
    plain_left = sum(type(m) is torch.nn.BatchNorm2d for m in model.modules())
    assert folded > 0 and folded + plain_left == sum(type(m) is torch.nn.BatchNorm2d for m in norms)
    if backbone == "efficientvit_b1":
        assert folded == len(norms) and plain_left == 0
    for key in before:
        assert torch.allclose(after[key], before[key], rtol=1e-4, atol=1e-5 * before[key].abs().max().item())
