#!/usr/bin/env python3
"""Regenerates the synthetic test photos of test-vectors/applicants (needs Pillow).

The photos are drawn, not taken: a plain background, a head and shoulders silhouette and the word
TEST, so that no real person is shown. Each good photo is a baseline JPEG of at most 4096 bytes
(the size of the card's photo file EF08). The two bad files exercise the photo checks: one JPEG
that is too large, one PNG named .jpg.
"""
import random
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
LIMIT = 4096
# (file, background, silhouette) colours for the good photos.
GOOD = [
    ("p01.jpg", (66, 133, 244), (235, 210, 190)),
    ("p02.jpg", (255, 255, 255), (200, 170, 150)),
    ("p03.jpg", (220, 40, 40), (240, 215, 195)),
    ("p04.jpg", (66, 133, 244), (180, 150, 130)),
    ("p05.jpg", (255, 255, 255), (225, 195, 175)),
    ("p06.jpg", (220, 40, 40), (210, 180, 160)),
]


def silhouette(bg, skin, size=(78, 96)):
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    w, h = size
    d.ellipse((w * 0.28, h * 0.12, w * 0.72, h * 0.58), fill=skin)  # head
    d.ellipse((w * 0.05, h * 0.62, w * 0.95, h * 1.35), fill=(40, 40, 60))  # shoulders
    d.text((w * 0.33, h * 0.80), "TEST", fill=(255, 255, 255))
    return img


def save_small(img, path):
    for quality in range(60, 5, -5):
        img.save(path, "JPEG", quality=quality, optimize=True, progressive=False)
        if path.stat().st_size <= LIMIT:
            return
    raise SystemExit(f"{path} does not fit in {LIMIT} bytes")


def main():
    for name, bg, skin in GOOD:
        save_small(silhouette(bg, skin), HERE / name)
    rng = random.Random(7)
    noise = Image.new("RGB", (64, 64))
    noise.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64 * 64)])
    noise.save(HERE / "too_large.jpg", "JPEG", quality=95)
    assert (HERE / "too_large.jpg").stat().st_size > LIMIT
    silhouette((255, 255, 255), (200, 170, 150)).save(HERE / "not_jpeg.jpg", "PNG")


if __name__ == "__main__":
    main()
