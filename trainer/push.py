"""Upload a trained checkpoint to the Hugging Face Hub.

    python -m trainer.push runs/folder/best user/phnet-portraits [--private]

Any folder of weights goes too (config.json + model.safetensors: what ``trainer.calibrate`` or
``phnet convert`` writes).

Needs a Hub token (``{login}``, or ``HF_TOKEN``). Only the model
files are uploaded (config.json, model.safetensors and a model card).
"""
from __future__ import annotations

import argparse
import sys

from phnet.console import printable_anywhere
from phnet.sources import hub_command
from phnet.weights import check_upload, upload_failed
from trainer.checkpoint import push_to_hub


def main(argv=None) -> int:
    printable_anywhere()
    p = argparse.ArgumentParser(prog="python -m trainer.push",
                                description=__doc__.replace("{login}", hub_command("auth login")),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint folder (e.g. runs/x/best or runs/x/checkpoints/step-...), or "
                   "a folder of weights (config.json + model.safetensors)")
    p.add_argument("repo", help="Hub model repo id, owner/name")
    p.add_argument("--private", action="store_true", help="create the repo private; refuse a public one that exists "
                   "(default: the account's own default for new repos)")
    p.add_argument("--token", default=None)
    args = p.parse_args(argv)
    try:
        check_upload(args.repo, args.token, later="run this again once online")
        url = push_to_hub(args.checkpoint, args.repo, private=args.private or None, token=args.token)
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # no network, no login, no such repo
        login = hub_command("auth login")
        print(f"error: {upload_failed(args.repo, exc)}; check the network and `{login}` (or HF_TOKEN)",
              file=sys.stderr)
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
