"""A small real-media sample corpus with broken files of every kind (the tests' and the benchmark's input).

    python -m corpus.sample OUT      # writes OUT/{images,videos,broken,odd}/...

- `images/`: 24 crops of photographs that ship inside the scikit-image wheel (public domain / CC0, see
  tests/media/LICENSES.md), 6 at each of four sizes (160x120, 120x160, 96x96, 200x100), JPEG and PNG, RGB,
  grayscale and RGBA;
- `videos/`: clips encoded with PyAV (libx264, like tests/media/make_clip.py): pans across photos of 3, 6 and 12
  frames at 128x96, and a 1-frame clip (too short for 2 sampled frames);
- `broken/`: a truncated JPEG, a truncated PNG, random bytes named .jpg, a truncated .mp4, an unsupported
  extension, an empty file, and a PNG whose header claims 30000x30000 pixels (over Pillow's decompression-bomb
  limit: too large);
- `odd/`: a 10x10 and a 16x16 image (native mode: under one patch, and one patch, which test-small's minimum width
  of 28 px refuses) and a 1.4 MiB BMP (too large under `--max-file-mib 1`).

`expected_errors(mode, frames, max_file_mib)` says which files fail and why under those options.
"""

from __future__ import annotations

import argparse
import io
import struct
import zlib
from fractions import Fraction
from importlib import resources
from pathlib import Path

import av
import numpy as np
from PIL import Image

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "logo.png")
SIZES = ((160, 120), (120, 160), (96, 96), (200, 100))  # (width, height)
CLIPS = {"pan-3.mp4": 3, "pan-6.mp4": 6, "pan-12.mp4": 12, "one-frame.mp4": 1}
CLIP_SIZE = (128, 96)


def photo(name: str) -> Image.Image:
    """A photograph bundled inside the scikit-image wheel (read from the package, never downloaded)."""
    with resources.as_file(resources.files("skimage") / "data" / name) as file, Image.open(file) as img:
        img.load()
        return img.copy()


def crop(img: Image.Image, size: tuple[int, int], shift: float) -> Image.Image:
    """A window of the photo with the aspect ratio of `size`, `shift` (0..1) along it, resized to `size`."""
    width, height = size
    scale = min(img.width / width, img.height / height) * 0.8
    box_w, box_h = width * scale, height * scale
    x0, y0 = (img.width - box_w) * shift, (img.height - box_h) * (1 - shift)
    return img.resize(size, Image.Resampling.BICUBIC, box=(x0, y0, x0 + box_w, y0 + box_h))


def write_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for s, size in enumerate(SIZES):
        for p, name in enumerate(PHOTOS):
            img = crop(photo(name), size, shift=(p + s) / (len(PHOTOS) + len(SIZES)))
            suffix = ".jpg" if img.mode in ("RGB", "L") and (p + s) % 2 else ".png"
            path = folder / f"{Path(name).stem}-{size[0]}x{size[1]}{suffix}"
            img.save(path, **({"quality": 90} if suffix == ".jpg" else {}))
            written.append(path)
    return written


def write_clip(path: Path, frames: int, source: str) -> None:
    """A pan across a photo, `frames` frames at CLIP_SIZE, H.264 in .mp4 (one encoder thread: reproducible)."""
    img = photo(source).convert("RGB")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height = CLIP_SIZE
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 8)
        stream.codec_context.options = {"crf": "23", "preset": "fast", "threads": "1"}
        for index in range(frames):
            frame = av.VideoFrame.from_image(crop(img, CLIP_SIZE, index / max(1, frames - 1)))
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_videos(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, frames) in enumerate(CLIPS.items()):
        write_clip(folder / name, frames, PHOTOS[i % 3])
    return [folder / name for name in CLIPS]


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (the data is a stub: Pillow refuses it on opening)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def write_broken(folder: Path, videos: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source, fmt in (("truncated.jpg", "rocket.jpg", "JPEG"), ("truncated.png", "coffee.png", "PNG")):
        whole = io.BytesIO()
        photo(source).save(whole, format=fmt)
        (folder / name).write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (folder / "random-bytes.jpg").write_bytes(np.random.default_rng(0).bytes(4096))
    clip = (videos / "pan-12.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(clip[: len(clip) // 2])
    (folder / "notes.xyz").write_text("not a medium\n")
    (folder / "empty.png").write_bytes(b"")
    (folder / "bomb.png").write_bytes(bomb_png(30000, 30000))


def write_odd(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = photo("chelsea.png").convert("RGB")
    img.resize((10, 10)).save(folder / "tiny-10px.png")
    img.resize((16, 16)).save(folder / "small-16px.png")
    img.resize((800, 600)).save(folder / "big.bmp")  # 1.4 MiB uncompressed


def write_sample(folder: str | Path) -> list[Path]:
    """Write the sample corpus into `folder`; returns every file written, sorted."""
    root = Path(folder)
    write_images(root / "images")
    write_videos(root / "videos")
    write_broken(root / "broken", root / "videos")
    write_odd(root / "odd")
    return sorted(p for p in root.rglob("*") if p.is_file())


def expected_errors(mode: str, frames: int, max_file_mib: float) -> dict[str, str]:
    """Relative path -> the reason it fails under these options (test-small's profile); the rest embed."""
    errors = {
        "broken/truncated.jpg": "media",
        "broken/truncated.png": "media",
        "broken/random-bytes.jpg": "media",
        "broken/truncated.mp4": "media",
        "broken/notes.xyz": "unsupported",
        "broken/empty.png": "empty",
        "broken/bomb.png": "too large",
    }
    if frames > 1 or mode == "codec":
        errors["videos/one-frame.mp4"] = "media"
    if mode == "native":
        errors |= {"odd/tiny-10px.png": "media", "odd/small-16px.png": "profile"}
    if max_file_mib < 1.3:
        errors["odd/big.bmp"] = "too large"
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", type=Path)
    files = write_sample(parser.parse_args().out)
    print(f"wrote {len(files)} files")


if __name__ == "__main__":
    main()
