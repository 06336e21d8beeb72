"""Make `tests/media/clip.mp4`: a short real-photo clip (pan/zoom, a cut, a held shot) encoded with PyAV.

No real video clip ships inside any package installed here, so the tests' clip is made from two real photographs
that do ship inside the scikit-image wheel (`skimage/data/coffee.png` and `skimage/data/chelsea.png`, both CC0,
see LICENSES.md):

- frames 0-11: a slow pan with a gentle zoom-in across coffee.png (everything moves: a camera move);
- frames 12-15: a cut to chelsea.png, then the same shot held still (only coding noise changes).

So a codec-style selection has something real to find: residual energy everywhere during the pan, a spike at the
cut (frame 12) and almost none in the held frames 13-15.

16 frames, 320x240, 8 fps, H.264 (libx264, yuv420p, CRF 20, one thread so the bitstream is reproducible for a given
PyAV/FFmpeg build) in an .mp4. The crop/zoom of each frame is done with Pillow (`Image.resize(box=...)`); the encoding
is PyAV's own (the FFmpeg libraries inside the `av` wheel).

    .venv/bin/python tests/media/make_clip.py            # rewrites tests/media/clip.mp4
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from importlib import resources
from pathlib import Path

import av
from PIL import Image

WIDTH, HEIGHT = 320, 240
FPS = 8
PAN_FRAMES, HOLD_FRAMES = 12, 4
OUT = Path(__file__).with_name("clip.mp4")


def skimage_photo(name: str) -> Image.Image:
    """A photograph bundled inside the scikit-image wheel (read from the package directory, never downloaded)."""
    path = resources.files("skimage") / "data" / name
    with resources.as_file(path) as file, Image.open(file) as img:
        return img.convert("RGB")


def pan_frames(photo: Image.Image, count: int) -> list[Image.Image]:
    """A left-to-right pan with a slow zoom-in: a 4:3 window shrinking from 90% to 75% of the photo's height."""
    frames = []
    for i in range(count):
        a = i / (count - 1)
        box_h = photo.height * (0.90 - 0.15 * a)
        box_w = box_h * WIDTH / HEIGHT
        x0 = (photo.width - box_w) * a
        y0 = (photo.height - box_h) * (0.3 + 0.4 * a)
        box = (x0, y0, x0 + box_w, y0 + box_h)
        frames.append(photo.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC, box=box))
    return frames


def held_frames(photo: Image.Image, count: int) -> list[Image.Image]:
    """The same centred 4:3 crop repeated (a static shot)."""
    box_h = photo.height * 0.95
    box_w = box_h * WIDTH / HEIGHT
    x0, y0 = (photo.width - box_w) / 2, (photo.height - box_h) / 2
    frame = photo.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC, box=(x0, y0, x0 + box_w, y0 + box_h))
    return [frame.copy() for _ in range(count)]


def write_clip(out: Path) -> None:
    coffee, chelsea = skimage_photo("coffee.png"), skimage_photo("chelsea.png")
    frames = pan_frames(coffee, PAN_FRAMES) + held_frames(chelsea, HOLD_FRAMES)
    with av.open(str(out), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.codec_context.options = {"crf": "20", "preset": "medium", "threads": "1"}
        stream.codec_context.thread_count = 1
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    write_clip(args.out)
    with av.open(str(args.out)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        codec = stream.codec_context.name
        print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB, {count} frames, {codec})")


if __name__ == "__main__":
    main()
