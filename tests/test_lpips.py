"""LPIPS from the user's weight files: the published layouts load, the distance is LPIPS v0.1's formula,
bad files are one error, and the scores carry it only when the weights are given."""

import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from conftest import write_config

from climode.cli.evaluate import main as evaluate_main
from climode.cli.train import main as train_main
from climode.errors import ClimodeError
from climode.verification.lpips import CHANNELS, LPIPS

CONVS = {
    0: (64, 3, 11, 4, 2),
    3: (192, 64, 5, 1, 2),
    6: (384, 192, 3, 1, 1),
    8: (256, 384, 3, 1, 1),
    10: (256, 256, 3, 1, 1),
}


@pytest.fixture
def weight_files(tmp_path):
    """Random weights in torchvision's AlexNet file layout (with its classifier) and the lpips package's heads."""
    g = torch.Generator().manual_seed(0)
    backbone = {}
    for i, (out, inp, k, _, _) in CONVS.items():
        backbone[f"features.{i}.weight"] = torch.randn(out, inp, k, k, generator=g) / (inp * k * k) ** 0.5
        backbone[f"features.{i}.bias"] = 0.01 * torch.randn(out, generator=g)
    backbone["classifier.1.weight"] = torch.zeros(4, 9216)  # torchvision's file has it; LPIPS does not use it
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(CHANNELS)}
    paths = tmp_path / "alexnet-owt.pth", tmp_path / "alex.pth"
    torch.save(backbone, paths[0])
    torch.save(heads, paths[1])
    return paths, backbone, heads


def reference(x, y, backbone, heads):
    """LPIPS v0.1 written from its definition: scaled inputs, AlexNet ReLU features, unit-normalised over
    channels, squared differences weighted by the heads, averaged over space and summed over layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    feats = []
    for image in (x, y):
        h, out = (2 * image - 1 - shift) / scale, []
        for n, (i, (_, _, _, stride, pad)) in enumerate(CONVS.items()):
            if n in (1, 2):
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(F.conv2d(h, backbone[f"features.{i}.weight"], backbone[f"features.{i}.bias"], stride, pad))
            out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        feats.append(out)
    return sum(
        F.conv2d((a - b) ** 2, heads[f"lin{k}.model.1.weight"]).mean((1, 2, 3)) for k, (a, b) in enumerate(zip(*feats))
    )


def test_the_published_files_load_and_give_lpips(weight_files):
    paths, backbone, heads = weight_files
    metric = LPIPS.from_files(*paths)
    x = torch.rand(3, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    y = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    torch.testing.assert_close(metric(x, y), reference(x, y, backbone, heads), rtol=1e-4, atol=1e-6)
    assert torch.equal(metric(x, x), torch.zeros(3))
    torch.testing.assert_close(metric(x, y), metric(y, x))
    far = [metric(x, (x + a * (y - x)).clamp(0, 1)).mean() for a in (0.25, 0.5, 1.0)]
    assert far[0] < far[1] < far[2]
    grey = x[:, :1]
    torch.testing.assert_close(
        metric(grey, y[:, :1]), metric(grey.expand(-1, 3, -1, -1), y[:, :1].expand(-1, 3, -1, -1))
    )
    one = paths[0].with_name("both.pth")
    torch.save({**backbone, **heads}, one)
    torch.testing.assert_close(LPIPS.from_files(one)(x, y), metric(x, y))  # one file with both


def test_bad_weight_files_are_one_error_and_never_run_code(weight_files, tmp_path):
    paths, backbone, heads = weight_files
    with pytest.raises(ClimodeError, match=r"missing \(first lin0.model.1.weight, of the heads\)"):
        LPIPS.from_files(paths[0])
    with pytest.raises(ClimodeError, match="first features.0.weight, of the AlexNet backbone"):
        LPIPS.from_files(paths[1])
    narrow = tmp_path / "narrow.pth"
    torch.save({**heads, "lin2.model.1.weight": torch.rand(1, 8, 1, 1)}, narrow)
    with pytest.raises(
        ClimodeError, match=r"lin2.model.1.weight is \(1, 8, 1, 1\), AlexNet LPIPS needs \(1, 384, 1, 1\)"
    ):
        LPIPS.from_files(paths[0], narrow)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(ClimodeError, match="not a weights file"):
        LPIPS.from_files(paths[0], evil)
    assert not marker.exists()
    with pytest.raises(ClimodeError, match="no such file"):
        LPIPS.from_files(tmp_path / "none.pth")
    with pytest.raises(ClimodeError, match="not 2 channels"):
        LPIPS.from_files(*paths)(torch.rand(1, 2, 32, 32), torch.rand(1, 2, 32, 32))
    with pytest.raises(ClimodeError, match="at least 32 x 32"):
        LPIPS.from_files(*paths)(torch.rand(1, 3, 16, 64), torch.rand(1, 3, 16, 64))


@pytest.mark.slow
def test_evaluate_scores_lpips_only_with_the_weights(weight_files, tmp_path, capsys):
    paths, _, _ = weight_files
    config = write_config(tmp_path / "c.yaml", data={"n_out": 2, "test_size": 4}, train={"adversarial": False})
    assert train_main(["--config", str(config), "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 0
    model = capsys.readouterr().out.strip().splitlines()[-1]
    lpips = {}
    for given in (False, True):
        out = tmp_path / f"scores-{given}.json"
        extra = ["--lpips-weights", ",".join(map(str, paths))] if given else []
        assert evaluate_main(["--checkpoint", model, "--json", str(out), *extra]) == 0
        lpips[given] = json.loads(out.read_text())["methods"]["persistence"]["lpips"]
    assert all(v is None for v in lpips[False])  # n/a, not a made-up number
    assert all(v > 0 for v in lpips[True])
    capsys.readouterr()
    forecast = [
        "--forecast",
        str(tmp_path / "f.nc"),
        "--truth",
        str(tmp_path / "t.nc"),
        "--lpips-weights",
        str(paths[1]),
    ]
    assert evaluate_main(forecast) == 2
    assert "--lpips-weights goes with --checkpoint or --protocol" in capsys.readouterr().err
    storms = ["--protocol", "cam5-irregular", "--preset", "cpu-small", "--out", str(tmp_path / "p"), *extra]
    assert evaluate_main(storms) == 2  # before any training
    assert "goes with the video protocols" in capsys.readouterr().err and not (tmp_path / "p").exists()
