"""climode.video: the datasets in their published layouts (real .avi, .gif, .jpg + .mat and .mp4 files
with motion in them), the cache, samples, training, both protocols, and clips generated at other
frame rates."""

import dataclasses
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import assert_user_error, command_error, run_module, write_config
from PIL import Image

import climode
from climode.cli.train import main as train_main
from climode.cli.video import main as video_main
from climode.errors import ClimodeError
from climode.model import ModelConfig, build
from climode.model.baselines import blend
from climode.verification.metrics import psnr
from climode.video import readers
from climode.video.clips import VideoClips
from climode.video.layouts import LAYOUTS
from climode.video.retime import frame_times, retime, working_shape
from climode.video.synthetic import write_layout

LAYOUT_NAMES = ("kth", "mgif", "penn", "folder")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for name in LAYOUT_NAMES:
        write_layout(root / name, name, videos=10 if name == "mgif" else 6, frames=24, size=48, seed=1)
    return root


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_each_layout_is_read_and_split_as_published(datasets, name, tmp_path):
    split = LAYOUTS.get_method(name)(datasets / name)
    assert split["train"] and split["test"] and not set(split["train"]) & set(split["test"])
    if name == "kth":  # persons 1-16 train, 17-25 test
        person = lambda p: int(p.name[6:8])
        assert all(person(p) <= 16 for p in split["train"]) and all(person(p) >= 17 for p in split["test"])
    clips = VideoClips(split["test"], "extrapolation", 5, 5, size=32, cache=tmp_path)
    sample = clips[0]
    assert clips.channels == (1 if name == "kth" else 3)  # KTH's grey kept as one channel
    assert sample["frames_in"].shape == (5, clips.channels, 32, 32) and sample["frames_out"].shape[0] == 5
    assert 0 <= sample["frames_in"].min() and sample["frames_in"].max() <= 1
    moving = np.abs(np.diff(sample["frames_in"], axis=0)).mean()
    assert moving > 1e-3  # the decoded frames hold the motion that was encoded


def test_a_second_read_comes_from_the_cache_without_decoding(datasets, tmp_path, monkeypatch):
    source = sorted((datasets / "folder").glob("*.mp4"))[0]
    first = readers.read_video(source, 32, None, tmp_path)
    monkeypatch.setattr(readers, "decode", lambda *a: pytest.fail("decoded again"))
    again = readers.read_video(source, 32, None, tmp_path)
    assert np.array_equal(first.frames, again.frames) and again.fps == pytest.approx(25.0)
    with pytest.raises(pytest.fail.Exception):
        readers.read_video(source, 40, None, tmp_path)  # other settings: another entry, decoded


@pytest.mark.slow
def test_samples_for_both_tasks_with_augmentation_and_dropped_inputs(datasets, tmp_path):
    sources = LAYOUTS.get_method("folder")(datasets / "folder")["train"]
    inter = VideoClips(sources, "interpolation", 5, 4, size=32, cache=tmp_path, drop=0.9, augment=True, seed=3)
    a, b = inter[0], inter[0]
    assert a["times_in"].tolist() == [0, 2, 4, 6, 8] and a["times_out"].tolist() == [1, 3, 5, 7]
    assert not np.array_equal(a["frames_out"], b["frames_out"])  # a new flip/rotation on each read
    missing = ~np.isfinite(a["frames_in"]).reshape(5, -1).all(1)
    assert not missing[0] and not missing[-1] and missing[1:-1].any()  # inner inputs dropped, ends kept
    plain = VideoClips(sources, "interpolation", 5, 4, size=32, cache=tmp_path, seed=3)
    assert np.array_equal(plain[0]["frames_out"], plain[0]["frames_out"])


@pytest.mark.slow
def test_motion_compensated_vid_ode_beats_frame_blending_at_the_middle_frames(datasets, tmp_path):
    """An untrained Vid-ODE interpolates along the estimated motion between its inputs (docs/design.md);
    on held-out clips of moving shapes that already beats blending the frames at the middle positions."""
    test = LAYOUTS.get_method("folder")(datasets / "folder")["train"]
    clips = VideoClips(test, "interpolation", 5, 4, size=48, cache=tmp_path)
    model = build(ModelConfig(channels=3, width=8)).eval()
    gains = []
    with torch.no_grad():
        for i in range(len(clips)):
            s = clips[i]
            x, t, q = (torch.as_tensor(s[k])[None] for k in ("frames_in", "times_in", "times_out"))
            truth = torch.as_tensor(s["frames_out"])[None]
            ours = model(x, t[0].float(), q[0].float())["frames"].clamp(0, 1)
            base = blend(x, t[0].float(), q[0].float())
            gains.append((psnr(ours, truth) - psnr(base, truth))[0, 1:3].mean().item())
    assert np.mean(gains) > 1.0, gains


@pytest.mark.slow
def test_train_on_a_published_layout_then_generate_other_frame_rates(datasets, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", data={"frame_size": 32, "clips_per_video": 1})
    env = {"CLIMODE_CACHE": str(tmp_path / "cache")}
    run = run_module(
        "climode.train", "--dataset", "kth", "--root", datasets / "kth", "--config", config,
        "--out", tmp_path / "run", "--max-steps", 2, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    model = tmp_path / "run" / "model.safetensors"
    assert model.is_file() and climode.load_model(model).model.config.channels == 1
    clip = sorted((datasets / "kth").rglob("*.avi"))[0]
    out = tmp_path / "rates"
    made = run_module(
        "climode.video", "--input", clip, "--checkpoint", model, "--fps", "8,11", "--out", out, "--extend", "0.2",
        env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    duration = 23 / 25 + 0.2
    for rate in (8, 11):
        for ext in ("mp4", "gif"):
            frames = iio.imread(out / f"{clip.stem}_{rate}fps.{ext}", index=None)
            assert len(frames) == len(frame_times(duration, rate)), (rate, ext)
    assert (out / f"{clip.stem}_rates.png").is_file()


def test_frames_at_input_times_reproduce_the_inputs(datasets, tmp_path):
    video = readers.read_video(sorted((datasets / "folder").glob("*.mp4"))[0], 32, None, tmp_path)
    model = build(ModelConfig(channels=3, width=8)).eval()
    seconds = np.arange(len(video.frames)) / video.fps  # every recorded frame
    made = retime(model, video, seconds, n_in=5)
    error = np.mean((made.astype(float) - np.asarray(video.frames, float)) ** 2)
    assert 10 * np.log10(255.0**2 / max(error, 1e-12)) >= 30


@pytest.mark.slow
@pytest.mark.parametrize("task", ["interpolation", "extrapolation"])
def test_both_video_protocols_write_their_tables(datasets, tmp_path, task, monkeypatch):
    from climode.protocols import run, spec

    tiny = dataclasses.replace(spec.PRESETS["cpu-small"], steps=2, width=4, video_size=32, seeds=(0,))
    monkeypatch.setitem(spec.PRESETS, "tiny", tiny)
    monkeypatch.setenv("CLIMODE_CACHE", str(tmp_path / "cache"))
    written = run("mgif", "tiny", tmp_path / "out", root=datasets / "mgif", task=task)
    text = (tmp_path / "out" / "results.md").read_text()
    baseline = "Frame blending" if task == "interpolation" else "Advection"
    assert baseline in text and "Vid-ODE" in text and "PSNR dB, pooled" in text and "n/a" in text  # LPIPS: n/a
    assert any(p.name == "scores.csv" for p in written)


def _clip(tmp_path, frames: int = 12):
    path = tmp_path / "clip.mp4"
    iio.imwrite(path, (np.random.default_rng(0).random((frames, 32, 32, 3)) * 255).astype(np.uint8), fps=10)
    return path


@pytest.mark.slow
def test_bad_input_gives_one_error_line_and_writes_nothing(datasets, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(_clip(tmp_path).read_bytes()[:2000])
    grey = build(ModelConfig(channels=1, width=4))
    model = climode.save_model(
        tmp_path / "grey.safetensors",
        grey,
        climode.checkpoint.Card(variables=("grey",), time_units="frames", config={"data": {"n_in": 5}}),
    )
    clip = _clip(tmp_path)
    one = tmp_path / "one.mp4"
    iio.imwrite(one, np.zeros((1, 32, 32, 3), np.uint8), fps=10)
    huge = tmp_path / "huge"  # a folder of images: a 10000 x 10000 PNG of one colour is small on disk
    huge.mkdir()
    Image.new("L", (10000, 10000)).save(huge / "0.png")
    shutil.copy(huge / "0.png", huge / "1.png")
    short = tmp_path / "short"
    short.mkdir()
    for i in range(3):
        shutil.copy(_clip(tmp_path, frames=6), short / f"clip{i}.mp4")
    out = tmp_path / "out"
    # as a user runs them (a fresh process each), one case per command; the rest in this process
    for args, fragments in [
        (("climode.train", "--dataset", "folder", "--root", short, "--out", out), ["has 6 frames", "needs 10"]),
        (("climode.video", "--input", corrupt, "--checkpoint", model, "--fps", "8", "--out", out), ["cannot decode"]),
    ]:
        result = run_module(*args, env={"CLIMODE_CACHE": str(tmp_path / "cache")})
        assert_user_error(result, *fragments)
        assert result.returncode == 2 and not out.exists(), args
    cases = [
        (train_main, ("--dataset", "folder", "--root", empty, "--out", out), ["holds no videos", str(empty)]),
        (train_main, ("--dataset", "kth", "--root", datasets / "mgif", "--out", out), ["KTH Action layout"]),
        (
            video_main,
            ("--input", clip, "--checkpoint", model, "--fps", "8", "--out", out, "--channels", "3"),
            ["--channels 1"],
        ),
        (video_main, ("--input", one, "--checkpoint", model, "--fps", "8", "--out", out), ["1 frame", "at least 2"]),
        (
            video_main,
            ("--input", huge, "--checkpoint", model, "--fps", "8", "--out", out),
            ["10000 x 10000 pixels", "larger than climode reads"],
        ),
    ]
    cases += [
        (video_main, ("--input", clip, "--checkpoint", model, "--fps", fps, "--out", out), [message])
        for fps, message in (("0", "positive"), ("-8", "positive"), ("nan", "positive"), ("fast", "not a number"))
    ]
    for main, args, fragments in cases:
        command_error(capsys, main, args, *fragments)
        assert not out.exists(), args


def test_a_video_shorter_than_a_sample_is_refused_by_name(tmp_path):
    clip = _clip(tmp_path, frames=6)
    with pytest.raises(ClimodeError, match=r"clip.mp4 has 6 frames.*needs 10"):
        VideoClips([clip], "extrapolation", 5, 5, size=32, cache=tmp_path)


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ""])
def test_frames_too_large_are_refused_before_they_are_decoded(tmp_path, monkeypatch, suffix):
    frames = (np.random.default_rng(0).random((6, 32, 48, 3)) * 255).astype(np.uint8)  # MP4: whole macroblocks
    if suffix:
        source = tmp_path / f"clip{suffix}"
        iio.imwrite(source, frames, **({"fps": 10} if suffix == ".mp4" else {"duration": 100}))
    else:
        source = tmp_path / "images"
        source.mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(source / f"{i}.png")
    monkeypatch.setattr(readers, "_channels", lambda *a: pytest.fail("decoded"))
    monkeypatch.setattr(readers, "MAX_PIXELS", 48 * 32 - 1)
    with pytest.raises(ClimodeError, match="frames of 48 x 32 pixels are larger than climode reads"):
        readers.decode(source, None, None)
    monkeypatch.setattr(readers, "MAX_PIXELS", 48 * 32)
    monkeypatch.setattr(readers, "MAX_BYTES", 48 * 32 * 3 * 5)  # five frames
    with pytest.raises(ClimodeError, match="6 frames of 48 x 32 pixels need"):
        readers.decode(source, None, None)


def test_a_clip_keeps_its_own_size_and_aspect(tmp_path):
    assert working_shape(240, 320, 128) == (128, 171) and working_shape(96, 64, 128) == (96, 64)
    assert working_shape(240, 320, 128, fixed=[32, 32]) == (32, 32)  # ODE-FC: its one size
    rng = np.random.default_rng(0)
    frames = (rng.random((6, 3, 36, 60)) * 255).astype(np.uint8)  # detail at every pixel
    video = readers.Video(frames, 10.0, tmp_path / "clip.mp4")
    model = build(ModelConfig(channels=3, width=4, frame_shape=[64, 64])).eval()  # as the trainer records it
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    made = retime(model, video, np.array([0.1, 0.15, 0.2]), n_in=4, side=16)
    assert set(seen) == {(16, 27)} and made.shape == (3, 3, 36, 60)  # the model works at 16 x 27, aspect kept
    error = np.mean((made[[0, 2]].astype(float) - frames[[1, 2]].astype(float)) ** 2)
    assert 10 * np.log10(255.0**2 / max(error, 1e-12)) >= 40  # the recorded frames come back whole, not upsampled
    upsampled = torch.nn.functional.interpolate(
        torch.nn.functional.interpolate(torch.as_tensor(frames[1:3] / 255.0), (16, 27), mode="area"), (36, 60)
    )
    assert np.mean((made[[0, 2]] / 255.0 - frames[1:3] / 255.0) ** 2) < 0.1 * float(
        torch.mean((upsampled - torch.as_tensor(frames[1:3] / 255.0)) ** 2)
    )
    still = readers.Video(np.repeat(frames[:1], 6, 0), 10.0, tmp_path / "still.mp4")
    assert np.abs(retime(model, still, np.array([0.15, 0.37]), n_in=4, side=16).astype(int) - frames[0]).max() <= 1


@pytest.mark.parametrize("shape", [(24, 32), (27, 33)])
def test_an_mp4_keeps_the_frames_size_even_when_odd(tmp_path, shape):
    from climode.video.write import write_mp4

    frames = (np.random.default_rng(0).random((4, 3, *shape)) * 255).astype(np.uint8)
    back = iio.imread(write_mp4(frames, tmp_path / "clip.mp4", 10.0), plugin="FFMPEG", index=None)
    assert back.shape == (4, *shape, 3)


def test_scenes_render_any_time_with_motion_inside_the_gaps():
    from climode.video.scenes import Scenes, make_scene, render

    data = Scenes("train", 8, n_in=4, n_out=1, frame_size=32)
    sample, again = data[3], data[3]
    assert all(np.array_equal(sample[k], again[k]) for k in sample)  # seeded by index
    t_in, t_out = sample["times_in"], sample["times_out"]
    assert np.array_equal(t_in, [0, 1, 2, 3]) and len(t_out) == 4
    assert np.all((t_out[:3] > t_in[:3]) & (t_out[:3] < t_in[1:])) and 3 < t_out[3] <= 4  # one per gap, one after
    assert (
        sample["frames_in"].shape == (4, 3, 32, 32)
        and 0 <= sample["frames_out"].min() <= sample["frames_out"].max() <= 1
    )
    assert not np.array_equal(Scenes("test", 8, frame_size=32)[3]["frames_in"], sample["frames_in"])  # splits differ
    moving = [make_scene(np.random.default_rng(i), 32) for i in range(8)]
    frames = [render(scene, np.array([0.0, 0.5, 1.0]), 32) for scene in moving]
    assert np.mean([np.abs(f[1] - f[0]).mean() > 1e-3 for f in frames]) > 0.5  # most scenes move
    for scene, f in zip(moving, frames):
        np.testing.assert_allclose(render(scene, np.array([0.5]), 32)[0], f[1], atol=1e-6)  # a time is one frame


@pytest.mark.slow
def test_the_bundled_model_retimes_a_320_by_240_clip_at_its_own_size(tmp_path):
    from climode.video.scenes import make_scene, render

    frames = render(make_scene(np.random.default_rng(5), 320), np.arange(8.0), 320)[:, :, 40:280]
    clip = tmp_path / "clip.mp4"
    iio.imwrite(clip, np.rint(frames.transpose(0, 2, 3, 1) * 255).astype(np.uint8), fps=10, macro_block_size=1)
    out = tmp_path / "rates"
    made = run_module("climode.video", "--input", clip, "--fps", "20,40", "--out", out)  # no --checkpoint
    assert made.returncode == 0, made.stderr
    for rate in (20, 40):
        back = iio.imread(out / f"clip_{rate}fps.mp4", plugin="FFMPEG", index=None)
        assert back.shape == (len(frame_times(0.7, rate)), 240, 320, 3)
        assert iio.immeta(out / f"clip_{rate}fps.mp4", plugin="FFMPEG")["fps"] == rate
