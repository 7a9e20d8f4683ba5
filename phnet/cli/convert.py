"""``phnet convert``: an official .pth checkpoint to config.json + model.safetensors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from ..sources import hub_command


def convert(args: argparse.Namespace) -> int:
    """``phnet convert``: the checkpoint converted into OUT_DIR, then pushed to the Hub where asked; the exit code
    (1 where the upload failed: the converted weights stay)."""
    from ..weights import (carries_official_terms, check_upload, convert_official, is_official_file_name, push_to_hub,
                          upload_failed)

    if args.push_to_hub:
        check_upload(args.push_to_hub)
    model = convert_official(args.checkpoint, args.out_dir, config=args.config, overwrite=args.overwrite)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out_dir}/config.json + model.safetensors ({model.config.name}, {n:,} parameters)")
    official = is_official_file_name(Path(args.checkpoint).name)
    if not official and not carries_official_terms(model.config):
        print("not an official file name: no licence file was written; add the terms of these weights yourself",
              file=sys.stderr)
    if args.push_to_hub:
        try:
            url = push_to_hub(model, args.push_to_hub, base_model=Path(args.checkpoint).name if official else None)
        except Exception as e:  # the Hub's errors are many; the converted weights are saved either way
            print(f"error: {upload_failed(args.push_to_hub, e)}; the converted weights are in {args.out_dir}: check "
                  f"the network and `{hub_command('auth login')}` (or HF_TOKEN), and push them with python -m "
                  f"trainer.push {args.out_dir} {args.push_to_hub}", file=sys.stderr)
            return 1
        print(f"uploaded to {url}")
    return 0
