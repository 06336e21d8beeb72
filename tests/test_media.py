"""Real media -> model inputs (runtime.media) and `python -m runtime embed`, end to end on real photos and a real clip.

Photos: files that ship inside the scikit-image wheel (`skimage/data/`, read from disk, never fetched by pooch).
Clip: tests/media/clip.mp4, made from two of those photos by tests/media/make_clip.py (see tests/media/LICENSES.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoImageProcessor

from corpus.sample import bomb_png
from models import load_model
from models.synthetic import CLIP_MEAN, CLIP_STD
from runtime import embed, media
from runtime.positions import frame_timeline, grid_positions, top_patches, video_positions
from tests.conftest import Available

DATA = Path(str(resources.files("skimage") / "data"))
ROCKET = DATA / "rocket.jpg"  # 640x427 RGB JPEG, public domain (SpaceX)
CHELSEA = DATA / "chelsea.png"  # 451x300 RGB PNG, CC0
CAMERA = DATA / "camera.png"  # 512x512 grayscale PNG, CC0
CLIP = Path(__file__).parent / "media" / "clip.mp4"  # 16 frames 320x240 H.264: pan 0-11, cut at 12, held 13-15
CLIP_FRAMES = 16
SMALL = 112  # crop size the tiny artifacts' test-small profile takes (H, W <= 112, T <= 4)
ATOL, RTOL = 5e-5, 1e-5  # fp32 artifacts vs eager


@pytest.fixture(scope="module")
def processor(tiny_dir: Path) -> object:
    return media.load_processor(tiny_dir)


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> torch.nn.Module:
    return load_model(tiny_dir)


def encode(model: torch.nn.Module, inputs: media.MediaInputs) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = model(inputs.pixel_values, patch_positions=inputs.patch_positions).last_hidden_state
    return out


def prefixed(prefix: str) -> Callable[[str], str]:
    return lambda message: f"{prefix}: {message}"


def denormalise(pixels: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) processor output back to [0, 1] RGB (only to inspect colours in tests)."""
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return pixels * std + mean


# -- the media themselves -----------------------------------------------------------------------------------------


def test_real_media_ship_offline() -> None:
    for path in (ROCKET, CHELSEA, CAMERA, DATA / "coffee.png"):
        assert path.is_file(), f"{path.name} is not inside the installed scikit-image wheel"
    with Image.open(ROCKET) as img:
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (640, 427))
    with Image.open(CAMERA) as img:
        assert img.mode == "L"
    assert CLIP.stat().st_size < 1 << 20
    with av.open(str(CLIP)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 240)
        assert sum(1 for _ in container.decode(stream)) == CLIP_FRAMES


# -- images -------------------------------------------------------------------------------------------------------


def test_jpeg_crop_is_the_checkpoint_processor(tiny_dir: Path, processor: object, model: torch.nn.Module) -> None:
    inputs = media.image_inputs(ROCKET, processor)
    assert inputs.pixel_values.shape == (1, 3, 1, 448, 448)
    assert inputs.pixel_values.dtype == torch.float32
    reference = AutoImageProcessor.from_pretrained(tiny_dir)(images=Image.open(ROCKET), return_tensors="pt")
    assert torch.equal(inputs.pixel_values[:, :, 0], reference["pixel_values"])
    assert torch.equal(inputs.patch_positions, grid_positions(1, 1, 32, 32))
    out = encode(model, inputs)
    assert out.shape == (1, 1024, 128)
    with torch.inference_mode():
        default = model(inputs.pixel_values).last_hidden_state  # the model's own grid path
    assert torch.equal(out, default)


def test_native_mode_keeps_aspect_ratio(tiny_dir: Path, processor: object) -> None:
    inputs = media.image_inputs(ROCKET, processor, mode="native")
    assert inputs.pixel_values.shape == (1, 3, 1, 434, 644)  # 427 -> 31 patches, 640 -> 46 patches
    assert torch.equal(inputs.patch_positions, grid_positions(1, 1, 31, 46))
    reference = AutoImageProcessor.from_pretrained(tiny_dir)(
        images=Image.open(ROCKET), size={"height": 434, "width": 644}, do_center_crop=False, return_tensors="pt"
    )
    assert torch.equal(inputs.pixel_values[:, :, 0], reference["pixel_values"])
    capped = media.image_inputs(ROCKET, processor, mode="native", max_tokens=1024)
    assert capped.pixel_values.shape == (1, 3, 1, 364, 546) and capped.tokens == 26 * 39 <= 1024
    assert media.native_size(427, 640, max_height=112, max_width=112) == (70, 112)
    assert media.native_size(448, 448, max_tokens=1024) == (448, 448)


def test_exif_orientation_is_applied(tmp_path: Path, processor: object) -> None:
    rotated = tmp_path / "portrait.jpg"
    with Image.open(ROCKET) as img:
        exif = img.getexif()
        exif[0x0112] = 6  # Orientation: rotate 90 CW to display
        img.save(rotated, exif=exif.tobytes(), quality=95)
    inputs = media.image_inputs(rotated, processor, mode="native")
    assert inputs.pixel_values.shape == (1, 3, 1, 644, 434)


def test_tiny_image_crop_upscales_native_refuses(tmp_path: Path, processor: object) -> None:
    path = tmp_path / "tiny.png"
    with Image.open(CHELSEA) as img:
        img.resize((10, 10)).save(path)
    assert media.image_inputs(path, processor).pixel_values.shape == (1, 3, 1, 448, 448)  # CLIP-style upscale
    with pytest.raises(media.MediaError, match=r"10x10 px, smaller than one 14x14 patch"):
        media.image_inputs(path, processor, mode="native")


def test_grayscale_and_rgba_become_rgb(tmp_path: Path, processor: object) -> None:
    gray = media.image_inputs(CAMERA, processor)
    rgb = denormalise(gray.pixel_values[0, :, 0])
    assert rgb.shape[0] == 3
    torch.testing.assert_close(rgb[0], rgb[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(rgb[1], rgb[2], atol=1e-5, rtol=0)

    path = tmp_path / "rgba.png"
    with Image.open(CHELSEA) as img:
        rgba = img.convert("RGBA").resize((448, 448))
    alpha = np.full((448, 448), 255, dtype=np.uint8)
    alpha[:, :224] = 0  # left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(path)
    out = denormalise(media.image_inputs(path, processor).pixel_values[0, :, 0])
    torch.testing.assert_close(out[:, :, :200], torch.ones(3, 448, 200), atol=1e-5, rtol=0)  # composited onto white
    assert float(out[:, :, 260:].std()) > 0.05  # the photo stays


# -- videos -------------------------------------------------------------------------------------------------------


def test_video_frames_sampled_and_on_the_timeline(tiny_dir: Path, processor: object) -> None:
    inputs = media.video_inputs(CLIP, processor, 4)
    assert inputs.pixel_values.shape == (1, 3, 4, 448, 448)
    assert inputs.patch_positions.shape == (1, 4096, 3)
    assert inputs.details["frame_indices"] == [0, 5, 10, 15]
    assert inputs.details["timeline"] == [0, 21, 42, 63]
    assert torch.equal(inputs.patch_positions, video_positions(inputs.pixel_values, timeline=64))
    assert inputs.patch_positions[0, ::1024, 0].tolist() == [0, 21, 42, 63]
    with av.open(str(CLIP)) as container:
        decoded = [frame.to_image() for frame in container.decode(video=0)]
    reference = AutoImageProcessor.from_pretrained(tiny_dir)(images=decoded[10], return_tensors="pt")["pixel_values"]
    assert torch.equal(inputs.pixel_values[:, :, 2], reference)


def test_video_native_mode(processor: object) -> None:
    inputs = media.video_inputs(CLIP, processor, 2, mode="native", max_tokens=300)
    assert inputs.pixel_values.shape[:3] == (1, 3, 2)
    h, w = inputs.pixel_values.shape[-2:]
    assert (h, w) == (210, 280)  # 240x320 -> 15x20 patches, 4:3 kept
    assert inputs.tokens == 2 * 15 * 20


def test_raw_h264_stream_is_counted_and_decoded(tmp_path: Path) -> None:
    """A raw H.264 elementary stream has no frame count in its header (0) and cannot seek: frames are counted by
    demuxing and decoded in one pass (transformers' `load_video` fails on such a file: `container.seek(0)`)."""
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            rgb = np.zeros((48, 64, 3), dtype=np.uint8)
            rgb[:, : 4 * (i + 1)] = 255  # a white bar growing frame by frame
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
        decoded = [frame.to_image() for frame in container.decode(video=0)]
    assert media.count_frames(path) == len(decoded) == 12
    images, indices, total = media.read_video(path, 3)
    assert (indices, total) == ([0, 6, 11], 12)
    for image, index in zip(images, indices, strict=True):
        assert np.array_equal(np.asarray(image), np.asarray(decoded[index]))


def test_read_video_closes_its_files() -> None:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("counting open file descriptors needs /proc/self/fd (Linux)")
    before = len(list(fds.iterdir()))
    for _ in range(10):
        media.read_video(CLIP, 2)
    assert len(list(fds.iterdir())) == before


# -- codec-style selection ----------------------------------------------------------------------------------------


def test_codec_selection_follows_the_residuals(processor: object) -> None:
    inputs = media.codec_inputs(CLIP, processor, canvases=4)
    per_frame = inputs.details["selected_per_frame"]
    assert inputs.pixel_values.shape == (1, 3, 4, 448, 448)
    assert inputs.patch_positions.shape == (1, 4096, 3)
    assert sum(per_frame) == 4096 and len(per_frame) == CLIP_FRAMES
    assert per_frame[0] == 1024  # the first frame is the I-frame, kept whole
    assert per_frame[12] == max(per_frame[1:])  # the cut to another photo
    assert per_frame[13:] == [0, 0, 0]  # the held shot: nothing new
    assert all(n > 0 for n in per_frame[1:12])  # the pan moves everything

    # Every packed patch is the patch its position names, on the same timeline as video_inputs.
    frames = media.video_inputs(CLIP, processor, CLIP_FRAMES).pixel_values[0]
    timeline = frame_timeline(CLIP_FRAMES).tolist()
    canvases = inputs.pixel_values[0]
    for i in range(0, 4096, 97):
        t, h, w = inputs.patch_positions[0, i].tolist()
        k, rest = divmod(i, 32 * 32)
        r, c = divmod(rest, 32)
        packed = canvases[:, k, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14]
        source = frames[:, timeline.index(t), h * 14 : (h + 1) * 14, w * 14 : (w + 1) * 14]
        assert torch.equal(packed, source)


def test_codec_scores_first_frame() -> None:
    frames = torch.zeros(1, 3, 3, 28, 28)
    frames[:, :, 1, :14, :14] = 1.0  # one patch changes in frame 1
    scores = media.residual_scores(frames)
    assert torch.isinf(scores[0, 0]).all()
    assert scores[0, 1].tolist() == [[1.0, 0.0], [0.0, 0.0]] and scores[0, 2].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    no_key = media.residual_scores(frames, keyframe=False)
    assert torch.equal(no_key[0, 0], no_key[0, 1])  # scored against the next frame instead


def test_codec_packing_is_lossless_for_the_model(processor: object, model: torch.nn.Module) -> None:
    """The encoder on packed canvases == the encoder on the whole clip keeping only those patches."""
    inputs = media.codec_inputs(CLIP, processor, canvases=2, size=SMALL)
    frames = media.video_inputs(CLIP, processor, CLIP_FRAMES, size=SMALL).pixel_values
    timeline = frame_timeline(CLIP_FRAMES).tolist()
    rows = inputs.patch_positions[0]
    frame_of = torch.tensor([timeline.index(t) for t in rows[:, 0].tolist()])
    visible = ((frame_of * 8 + rows[:, 1]) * 8 + rows[:, 2]).unsqueeze(0)
    with torch.inference_mode():
        whole = model(frames, visible_indices=visible, patch_positions=inputs.patch_positions).last_hidden_state
    torch.testing.assert_close(encode(model, inputs), whole, atol=1e-5, rtol=1e-5)


def test_codec_precomputed_selection_and_scores(processor: object) -> None:
    rows = [[t, h, w] for t in (3, 7) for h in range(8) for w in range(8)]
    inputs = media.codec_inputs(CLIP, processor, size=SMALL, selection=rows)
    frames = media.video_inputs(CLIP, processor, CLIP_FRAMES, size=SMALL).pixel_values
    assert torch.equal(inputs.pixel_values[:, :, 0], frames[:, :, 3])
    assert torch.equal(inputs.pixel_values[:, :, 1], frames[:, :, 7])
    timeline = frame_timeline(CLIP_FRAMES)
    assert inputs.patch_positions[0, :, 0].unique().tolist() == [timeline[3].item(), timeline[7].item()]

    scores = torch.rand(CLIP_FRAMES, 8, 8, generator=torch.Generator().manual_seed(0))
    scored = media.codec_inputs(CLIP, processor, size=SMALL, scores=scores, canvases=3)
    mask = top_patches(scores.unsqueeze(0), 3 * 64)
    assert scored.details["selected_per_frame"] == mask[0].reshape(CLIP_FRAMES, -1).sum(1).tolist()

    with pytest.raises(media.MediaError, match="do not fill whole canvases"):
        media.codec_inputs(CLIP, processor, size=SMALL, selection=rows[:-1])
    with pytest.raises(media.MediaError, match=r"t \(sampled frame\) must lie in \[0, 16\)"):
        media.codec_inputs(CLIP, processor, size=SMALL, selection=[[16, 0, 0]])
    with pytest.raises(media.MediaError, match="duplicate"):
        media.codec_inputs(CLIP, processor, size=SMALL, selection=[*rows[:-1], rows[0]])


def test_codec_scores_and_selection_files_are_checked(tmp_path: Path) -> None:
    shape: tuple[int, int, int, int] = (1, 4, 2, 2)
    assert tuple(media.codec.check_scores(np.ones((4, 2, 2)), shape).shape) == shape
    with pytest.raises(media.MediaError, match=r"expected shape \(4, 2, 2\) .* got \(1, 3, 2, 2\)"):
        media.codec.check_scores(np.ones((3, 2, 2)), shape)
    with pytest.raises(media.MediaError, match="NaN"):
        media.codec.check_scores(np.full((4, 2, 2), np.nan), shape)

    rows = np.array([[0, 0, 1], [3, 1, 0]], dtype=np.int64)
    np.save(tmp_path / "rows.npy", rows)
    (tmp_path / "rows.json").write_text(json.dumps(rows.tolist()))
    for name in ("rows.npy", "rows.json"):
        loaded = media.load_selection(tmp_path / name)
        assert np.array_equal(loaded, rows)
        mask = media.selection_mask(loaded, shape)
        assert mask.nonzero().tolist() == [[0, 0, 0, 1], [0, 3, 1, 0]]
    (tmp_path / "bad.json").write_text('[[0, 0], "x"]')
    with pytest.raises(media.MediaError, match=r"bad.json: cannot read \[t, h, w\] rows"):
        media.load_selection(tmp_path / "bad.json")
    with pytest.raises(media.MediaError, match=r"expected a non-empty list of \[t, h, w\] rows"):
        media.selection_mask(np.zeros((0, 3)), shape)


# -- the package ----------------------------------------------------------------------------------------------------


def test_media_package_imports_no_toolchain() -> None:
    """`runtime.media` imports transformers only when a processor is loaded (the import test of `runtime` as a whole
    lives with the contract tests; this one holds the media package to the same rule on its own)."""
    code = (
        "import sys, runtime; before = set(sys.modules); import runtime.media; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('transformers', 'models', 'export')))"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- bad media ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_media")
    files = {
        "garbage.jpg": b"definitely not a JPEG " * 20,
        "garbage.mp4": bytes(range(256)) * 8,
        "empty.png": b"",
        "truncated.mp4": CLIP.read_bytes()[: CLIP.stat().st_size // 2],
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    with av.open(str(root / "zero_frames.avi"), "w") as container:  # a video stream with no frames
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    with av.open(str(root / "audio_only.wav"), "w") as container:
        astream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(astream.encode(frame))
        container.mux(astream.encode(None))
    return {path.name: path for path in root.iterdir()}


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("missing.jpg", {}, "no such file"),
        ("empty.png", {}, r"empty file \(0 bytes\)"),
        ("garbage.jpg", {}, "not an image Pillow can read"),
        ("garbage.mp4", {}, "not a readable video or image"),
        ("truncated.mp4", {}, "not a readable video or image"),
        ("zero_frames.avi", {}, "the video stream has no frames"),
        ("audio_only.wav", {}, r"no video stream \(streams: audio\)"),
        ("clip.mp4", {"num_frames": 32}, r"the clip has 16 frame\(s\), fewer than the 32 asked for"),
        ("clip.mp4", {"num_frames": 0}, r"frames must be in \[1, 64\]"),
        ("rocket.jpg", {"mode": "codec"}, "codec mode needs a video"),
        ("rocket.jpg", {"num_frames": 4}, "a still image has one frame"),
        ("clip.mp4", {"mode": "codec", "canvases": 17}, r"canvases must be in \[1, 16\]"),
    ],
)
def test_bad_media_one_line_errors(
    bad_media: dict[str, Path], processor: object, name: str, kwargs: dict[str, object], message: str
) -> None:
    path = {"clip.mp4": CLIP, "rocket.jpg": ROCKET}.get(name) or bad_media.get(name) or Path("/nonexistent") / name
    with pytest.raises(media.MediaError, match=message) as info:
        media.load_inputs(path, processor, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_cli_bad_media_is_one_error_line(
    bad_media: dict[str, Path], tiny_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert embed.main([str(bad_media["zero_frames.avi"]), "--model", str(tiny_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no frames" in err[0]


def test_cli_decompression_bomb_is_one_error_line(
    tmp_path: Path, tiny_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image whose header claims 30000 x 30000 pixels: refused on opening as too large, one line (it ended in a
    DecompressionBombError traceback: media_kind did not catch it)."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(30000, 30000))
    assert embed.main([str(bomb), "--model", str(tiny_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "decompression bomb" in err[0], err
    with pytest.raises(media.ImageTooLarge, match="decompression bomb"):
        media.read_image(bomb)


# -- the embed command --------------------------------------------------------------------------------------------


def read_features(path: Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return f.get_tensor("last_hidden_state"), f.get_tensor("patch_positions"), f.metadata()


def test_cli_embed_eager(
    tmp_path: Path, tiny_dir: Path, processor: object, model: torch.nn.Module, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "features.safetensors"
    assert embed.main([str(ROCKET), "--model", str(tiny_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    features, positions, meta = read_features(out)
    assert features.shape == (1, 1024, 128) and features.dtype == torch.float32
    assert torch.equal(features, encode(model, media.image_inputs(ROCKET, processor)))
    assert torch.equal(positions, grid_positions(1, 1, 32, 32))
    checksum = embed.features_checksum(features)
    assert meta["checksum_sha256"] == checksum and f"sha256      {checksum}" in printed
    assert "features    (1, 1024, 128)" in printed
    assert (meta["source"], meta["mode"], meta["kind"], json.loads(meta["shape"])) == (
        str(ROCKET),
        "crop",
        "image",
        [1, 1024, 128],
    )
    assert meta["engine"].startswith("eager") and len(meta["weights_sha256"]) == 64


# -- artifacts (tiny preset, test-small profile) against eager ----------------------------------------------------

KINDS = ("pt2", "aoti", "onnx")


@pytest.fixture(scope="module")
def small_inputs(processor: object) -> dict[str, media.MediaInputs]:
    return {
        "jpeg-crop": media.image_inputs(ROCKET, processor, size=SMALL),
        "jpeg-native": media.image_inputs(ROCKET, processor, mode="native", max_height=SMALL, max_width=SMALL),
        "video-4": media.video_inputs(CLIP, processor, 4, size=SMALL),
        "codec-2": media.codec_inputs(CLIP, processor, canvases=2, size=SMALL),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_media_through_artifacts_match_eager(
    kind: str,
    tiny_artifacts_fp32: Available[Path],
    small_inputs: dict[str, media.MediaInputs],
    model: torch.nn.Module,
) -> None:
    import runtime

    path = tiny_artifacts_fp32[kind]  # the session's shared fp32 test-small artifacts (a kind it lacks: skipped)
    with runtime.load(path) as runner:
        for name, inputs in small_inputs.items():
            out = runner(inputs.pixel_values, inputs.patch_positions)
            assert out.shape == (1, inputs.tokens, 128), name
            torch.testing.assert_close(out, encode(model, inputs), atol=ATOL, rtol=RTOL, msg=prefixed(f"{kind} {name}"))


def test_cli_embed_through_an_artifact(
    tmp_path: Path, tiny_artifacts_fp32: Available[Path], tiny_dir: Path, model: torch.nn.Module, processor: object
) -> None:
    from contract.manifest import read_manifest

    path = tiny_artifacts_fp32["onnx"]
    out = tmp_path / "codec.safetensors"
    argv = [str(CLIP), "--artifact", str(path), "--mode", "codec", "--out", str(out)]  # processor: from the manifest
    assert embed.main(argv) == 0
    features, positions, meta = read_features(out)
    # Defaults follow the artifact: 112x112 canvases (its profile's largest square), 2 canvases (its opt frames).
    reference = media.codec_inputs(CLIP, processor, canvases=2, size=SMALL)
    assert features.shape == (1, 128, 128)
    assert torch.equal(positions, reference.patch_positions)
    torch.testing.assert_close(features, encode(model, reference), atol=ATOL, rtol=RTOL)
    assert meta["artifact_sha256"] == read_manifest(path).sha256 and meta["mode"] == "codec"
    assert json.loads(meta["details"])["canvases"] == 2


# -- full size (slow): the published shapes -----------------------------------------------------------------------


def one_layer_copy(model_dir: Path, out: Path) -> Path:
    """The checkpoint with its first encoder layer only (config, preprocessor and every other file as published):
    the published shapes at 1/24 of the compute."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((model_dir / "config.json").read_text())
    config["num_hidden_layers"] = 1
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tensors = load_file(str(model_dir / "model.safetensors"))
    kept = {k: v for k, v in tensors.items() if ".layers." not in k or ".layers.0." in k}
    save_file(kept, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


@pytest.mark.slow
def test_full_size_shapes(tmp_path: Path) -> None:
    """The published shapes end to end (448² crop: 1,024 tokens of 1,024 features; 4 frames on the 64-slot timeline),
    through a one-layer copy of the full-size checkpoint (the layer count changes no shape)."""
    from models.synthetic import ensure_default

    full = one_layer_copy(ensure_default("full"), tmp_path / "full-1-layer")
    image_out, video_out = tmp_path / "image.safetensors", tmp_path / "video.safetensors"
    assert embed.main([str(ROCKET), "--model", str(full), "--out", str(image_out)]) == 0
    assert embed.main([str(CLIP), "--model", str(full), "--frames", "4", "--out", str(video_out)]) == 0
    image, _, _ = read_features(image_out)
    video, positions, meta = read_features(video_out)
    assert image.shape == (1, 1024, 1024)
    assert video.shape == (1, 4096, 1024)
    assert positions[0, ::1024, 0].tolist() == [0, 21, 42, 63]
    assert torch.isfinite(image).all() and torch.isfinite(video).all()
    assert json.loads(meta["details"])["frame_indices"] == [0, 5, 10, 15]
