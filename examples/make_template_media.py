"""Make the pictures the ComfyUI templates load, and the templates' before | after thumbnails.

    python -m examples.make_template_media                # pictures only (needs scikit-image)
    python -m examples.make_template_media --thumbnails   # also example_workflows/*.jpg (runs PHNet)

Pictures (written to examples/comfyui/, copied into ComfyUI's input folder by the node pack):
- ``phnet_composite.png``: ``composite.png`` with ``mask.png`` as its alpha channel (opaque = the
  pasted subject), the RGBA cut-out composite the first template expects.
- ``phnet_subject.png``: ``skimage.data.astronaut()`` (NASA, public domain), 320 x 320.
- ``phnet_background.png``: ``skimage.data.rocket()`` (SpaceX launch photo, released into the public
  domain), 480 x 320: a blue dusk scene, so the warm studio light of the subject visibly changes.
- ``phnet_frame_1.jpg`` .. ``phnet_frame_4.jpg`` and ``phnet_frames_mask.png``: a four-frame "clip"
  for the frames template, 320 x 320: the astronaut pasted at one place over a window panning across
  the rocket photo (frames 1-2), then a cut to ``skimage.data.coffee()`` (CC0, Rachel Michetti),
  panning too (frames 3-4); the mask is the pasted subject, shared by the four frames.
- ``phnet_reference.png``: the reference region for ``phnet_composite.png`` in the reference template
  (white = match this part of the background): the flag on the left.

Thumbnails: the template's result next to its input, computed with the bundled default PHNet. SAM
is replaced by ``mask.png`` (what a box prompt around the astronaut gives); the generate template
cannot run Stable Diffusion here, so its thumbnail uses a square crop of the rocket photo as the
"generated" background and says so in its label.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "comfyui"
SUBJECT_SIDE = 320
BACKGROUND_SIZE = (480, 320)  # W x H

# Where the templates put the subject (kept in step with workflows/build.py, which imports these).
SUBJECT_BOX = "24,6,232,320"  # around the astronaut in phnet_subject.png, for PHNet SAM Segment
PASTE_ON_PHOTO = {"x": 130, "y": 320, "scale": 0.7, "anchor": "bottom-center"}
PASTE_ON_GENERATED = {"x": 256, "y": 512, "scale": 0.9, "anchor": "bottom-center"}
FRAME_SIDE = 320
FRAMES = tuple(f"phnet_frame_{i}.jpg" for i in range(1, 5))
FRAMES_MASK = "phnet_frames_mask.png"
PASTE_IN_FRAMES = {"x": 160, "y": 320, "scale": 0.8, "anchor": "bottom-center"}
REFERENCE_COLUMNS = 0.22  # the flag: the left 22 % of phnet_composite.png


def subject_mask(side: int = SUBJECT_SIDE) -> np.ndarray:
    m = Image.open(HERE / "mask.png").convert("L").resize((side, side), Image.BILINEAR)
    return np.asarray(m, dtype=np.float32) / 255.0


def make_pictures(out: Path = OUT) -> list[Path]:
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("the pictures come from scikit-image's sample data: pip install scikit-image") from None

    out.mkdir(parents=True, exist_ok=True)
    comp = np.asarray(Image.open(HERE / "composite.png").convert("RGB"))
    alpha = np.asarray(Image.open(HERE / "mask.png").convert("L"))
    files = {
        "phnet_composite.png": Image.fromarray(np.dstack([comp, alpha]), "RGBA"),
        "phnet_subject.png": Image.fromarray(skimage.data.astronaut()).resize((SUBJECT_SIDE,) * 2, Image.LANCZOS),
        "phnet_background.png": Image.fromarray(skimage.data.rocket()).resize(BACKGROUND_SIZE, Image.LANCZOS),
    }
    frames, frames_mask = clip_frames(files["phnet_subject.png"], files["phnet_background.png"])
    files.update({name: Image.fromarray(frame) for name, frame in zip(FRAMES, frames)})
    files[FRAMES_MASK] = Image.fromarray(frames_mask, "L")
    reference = np.zeros(alpha.shape, np.uint8)
    reference[:, : round(REFERENCE_COLUMNS * alpha.shape[1])] = 255
    files["phnet_reference.png"] = Image.fromarray(reference, "L")
    paths = []
    for name, im in files.items():
        if name.endswith(".jpg"):
            im.save(out / name, quality=90, optimize=True)
        else:
            im.save(out / name, optimize=True)
        paths.append(out / name)
    return paths


def clip_frames(subject: Image.Image, rocket: Image.Image) -> tuple[list[np.ndarray], np.ndarray]:
    """Four 320 x 320 frames (two shots, each panning) with the subject pasted at one place, and its mask."""
    import skimage.data

    from phnet.compositing import paste_subject

    coffee = Image.fromarray(skimage.data.coffee()).resize((480, 320), Image.LANCZOS)
    side = FRAME_SIDE
    windows = [(rocket, 40), (rocket, 64), (coffee, 120), (coffee, 144)]  # (scene, left edge): a cut after frame 2
    frames, mask = [], None
    for scene, left in windows:
        background = np.asarray(scene)[:side, left : left + side]
        pasted, mask = paste_subject(background, np.asarray(subject), subject_mask(), **PASTE_IN_FRAMES)
        frames.append(np.uint8(np.round(pasted * 255)))
    return frames, np.uint8(np.round(mask * 255))


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=15)
    except TypeError:  # Pillow before 10.1 has only its small bitmap font
        return ImageFont.load_default()


def _label(im: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(im)
    font = _font()
    x0, y0, x1, y1 = draw.textbbox((8, 6), text, font=font)
    draw.rectangle((4, 4, x1 + 4, y1 + 5), fill=(0, 0, 0))
    draw.text((8, 6), text, fill=(255, 255, 255), font=font)
    return im


def _after(harmonized) -> tuple[np.ndarray, str]:
    """The result and its label: what the shipped weights did, so a thumbnail never shows a change
    that the template does not make."""
    if all(c.unchanged for c in harmonized.corrections):
        return harmonized.image, "after: unchanged (do-no-harm threshold)"
    if any(c.floored for c in harmonized.corrections):
        return harmonized.image, "after PHNet (a share: below do-no-harm)"
    if any(c.kept < 1 for c in harmonized.corrections):
        return harmonized.image, "after PHNet (held back: do-no-harm)"
    return harmonized.image, "after PHNet"


def before_after(before: np.ndarray, harmonized, note: str = "") -> Image.Image:
    """Side by side, 640 px wide in all, each half labelled."""
    halves = []
    after, label = _after(harmonized)
    for arr, text in ((before, "before" + note), (after, label)):
        im = Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8))
        im = im.resize((320, round(320 * im.height / im.width)), Image.LANCZOS)
        halves.append(_label(im, text))
    sheet = Image.new("RGB", (640 + 4, max(h.height for h in halves)), (24, 24, 24))
    sheet.paste(halves[0], (0, 0))
    sheet.paste(halves[1], (324, 0))
    return sheet


def frames_sheet(before: np.ndarray, harmonized) -> Image.Image:
    """The frames in a row, before above after, 640 px wide."""
    side = 640 // len(before)
    sheet = Image.new("RGB", (640, 2 * side), (24, 24, 24))
    after, label = _after(harmonized)
    label = label if not label.startswith("after PHNet") else label + ", smoothed over time"
    for row, (frames, text) in enumerate(((before, "before"), (after, label))):
        for i, frame in enumerate(frames):
            im = Image.fromarray(np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)).resize(
                (side, side), Image.LANCZOS)
            sheet.paste(im, (i * side, row * side))
        _label_at(sheet, text, row * side)
    return sheet


def _label_at(im: Image.Image, text: str, top: int) -> None:
    draw = ImageDraw.Draw(im)
    font = _font()
    x0, y0, x1, y1 = draw.textbbox((8, top + 6), text, font=font)
    draw.rectangle((4, top + 4, x1 + 4, y1 + 5), fill=(0, 0, 0))
    draw.text((8, top + 6), text, fill=(255, 255, 255), font=font)


def make_thumbnails(names: dict[str, str], target: Path) -> list[Path]:
    """``names`` maps "composite" / "paste" / "generate" / "reference" / "frames" to template file names."""
    from phnet import Harmonizer
    from phnet.compositing import paste_subject

    h = Harmonizer.from_pretrained(device="cpu")
    load = lambda name: np.asarray(Image.open(OUT / name).convert("RGB"), dtype=np.float32) / 255.0  # noqa: E731
    comp = load("phnet_composite.png")
    alpha = np.asarray(Image.open(OUT / "phnet_composite.png").getchannel("A"), dtype=np.float32) / 255.0
    subject, background = load("phnet_subject.png"), load("phnet_background.png")
    side = background.shape[0]
    square = background[:, (background.shape[1] - side) // 2:][:, :side]
    square = np.asarray(Image.fromarray(np.uint8(square * 255)).resize((512, 512), Image.LANCZOS)) / 255.0
    sheets = {"composite": before_after(comp, h.harmonize(comp, alpha))}
    reference = np.asarray(Image.open(OUT / "phnet_reference.png"), dtype=np.float32) / 255.0
    sheets["reference"] = before_after(comp, h.harmonize(comp, alpha, reference_mask=reference), " (match the flag)")
    frames = np.stack([load(name) for name in FRAMES])
    frames_mask = np.asarray(Image.open(OUT / FRAMES_MASK), dtype=np.float32) / 255.0
    sheets["frames"] = frames_sheet(frames, h.harmonize(frames, frames_mask, temporal=True))
    for key, bg, where, note in (("paste", background, PASTE_ON_PHOTO, ""),
                                 ("generate", square, PASTE_ON_GENERATED, " (photo for SD)")):
        pasted, mask = paste_subject(bg, subject, subject_mask(), **where)
        sheets[key] = before_after(pasted, h.harmonize(pasted, mask, mask_is_alpha=True), note)  # as the templates
    paths = []
    for key, sheet in sheets.items():
        path = target / f"{names[key]}.jpg"
        sheet.save(path, "JPEG", quality=85, optimize=True)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--thumbnails", action="store_true", help="also write example_workflows/*.jpg")
    a = p.parse_args()
    for path in make_pictures():
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")
    if a.thumbnails:
        from workflows import build

        names = {w.key: w.name for w in build.workflows()}
        for path in make_thumbnails(names, ROOT / "example_workflows"):
            print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
