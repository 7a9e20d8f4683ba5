"""Command line: ``phnet harmonize``, ``phnet convert``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def _load_pair(composite: Path, mask: Path | None):
    from PIL import Image

    image = Image.open(composite)
    image.load()
    if mask is None:
        if image.mode not in ("RGBA", "LA") and "transparency" not in image.info:
            raise SystemExit(f"error: {composite} has no alpha channel; give a MASK image as the second argument")
        alpha = image.convert("RGBA").getchannel("A")
        return image.convert("RGB"), alpha
    m = Image.open(mask)
    m.load()
    if m.size != image.size:
        raise SystemExit(
            f"error: mask {mask} is {m.size[0]}×{m.size[1]} but {composite} is {image.size[0]}×{image.size[1]}; "
            "resize the mask to the composite"
        )
    return image, m


def _pairs(composite: Path, mask: Path | None, out: Path) -> list[tuple[Path, Path | None, Path]]:
    if composite.is_file():
        target = out / composite.name if out.is_dir() else out
        return [(composite, mask, target)]
    if not composite.is_dir():
        raise SystemExit(f"error: {composite} does not exist")
    if mask is not None and not mask.is_dir():
        raise SystemExit("error: with a folder of composites, MASK must be a folder of masks with the same names")
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for path in sorted(p for p in composite.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        found = None
        if mask is not None:
            found = next(
                (m for m in sorted(mask.iterdir()) if m.stem == path.stem and m.suffix.lower() in IMAGE_SUFFIXES), None
            )
            if found is None:
                raise SystemExit(f"error: no mask named {path.stem}.* in {mask} for {path}")
        pairs.append((path, found, out / (path.stem + ".png")))
    if not pairs:
        raise SystemExit(f"error: no images in {composite}")
    return pairs


def harmonize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .harmonizer import Harmonizer
    from .visualize import before_after

    pairs = _pairs(Path(args.composite), Path(args.mask) if args.mask else None, Path(args.output))
    harmonizer = Harmonizer.from_pretrained(
        args.weights, revision=args.revision, device=args.device, dtype=args.dtype, method=args.method
    )
    for composite, mask, target in tqdm(pairs, desc="harmonizing", unit="image", disable=len(pairs) == 1):
        image, m = _load_pair(composite, mask)
        result = harmonizer(
            image, m, strength=args.strength, mode=args.mode, working_size=args.working_size
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        result.save(target)
        if args.compare:
            compare = Path(args.compare) if len(pairs) == 1 else target.with_name(target.stem + "_compare.png")
            before_after(image, result, m).save(compare)
        if len(pairs) == 1:
            print(f"wrote {target}" + (f" and {compare}" if args.compare else ""))
    return 0


def convert(args: argparse.Namespace) -> int:
    from .weights import convert_official, push_to_hub

    model = convert_official(args.checkpoint, args.out_dir, config=args.config)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out_dir}/config.json + model.safetensors ({model.config.name}, {n:,} parameters)")
    if args.push_to_hub:
        url = push_to_hub(model, args.push_to_hub, base_model=Path(args.checkpoint).name)
        print(f"uploaded to {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phnet", description="PHNet portrait harmonization")
    sub = parser.add_subparsers(dest="command", required=True)

    h = sub.add_parser("harmonize", help="harmonize a composite (or a folder of them) given the subject mask")
    h.add_argument("composite", help="composite image, or a folder of them")
    h.add_argument("mask", nargs="?", help="subject mask (white = subject), or a folder; default: the alpha channel")
    h.add_argument("-o", "--output", required=True, help="output image (or folder)")
    h.add_argument("--weights", help="weights file, model folder or Hub repo id (default: bundled weights)")
    h.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    h.add_argument("--strength", type=float, default=1.0, help="0 = unchanged, 1 = full harmonization")
    h.add_argument("--mode", choices=("full", "official"), default="full", help="full resolution (default) or the official square pipeline")
    h.add_argument("--method", choices=("correction", "guided", "resize"), default="correction", help="how the result reaches full resolution")
    h.add_argument("--working-size", type=int, help="override the network's working resolution (multiple of 8)")
    h.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    h.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="compute precision; auto (default) = bf16 on CPUs with AMX and recent GPUs, else fp32")
    h.add_argument("--compare", help="also write a before/after comparison image here")
    h.set_defaults(run=harmonize)

    c = sub.add_parser("convert", help="official .pth checkpoint → config.json + model.safetensors")
    c.add_argument("checkpoint")
    c.add_argument("out_dir")
    c.add_argument("--config", choices=("iharmony", "ffhqh"), help="architecture (default: inferred from shapes)")
    c.add_argument("--push-to-hub", metavar="REPO", help="also upload the converted weights to this Hub repo")
    c.set_defaults(run=convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
