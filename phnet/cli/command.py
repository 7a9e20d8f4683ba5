"""The ``phnet`` command: parsing, signals, and streams whose reader may leave."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Callable, TextIO

# nothing here loads torch: `phnet --help` and a mistyped option are answered at once, and the command's work
# (torch, numpy) is imported once the command line parsed (_work)
from ..choices import METHODS, MODES, PRECISIONS
from ..console import interrupted_status, loading_quietly
from ..sources import OFFICIAL, OFFICIAL_NAMES


TEMPORAL_SIGMA = 3.0  # --temporal's, given alone
OFFICIAL_PRESETS = tuple(sorted({w.preset for w in OFFICIAL.values()}))


class CommandParser(argparse.ArgumentParser):
    """The ``phnet`` command's parser, holding its ``harmonize`` sub-parser: :func:`main` parses a harmonize
    command with that one alone, so that options may come between its file names."""

    harmonize_parser: argparse.ArgumentParser


def build_parser() -> CommandParser:
    """The parser of the ``phnet`` command and its sub-commands (``harmonize``, ``convert``)."""
    parser = CommandParser(prog="phnet", description="PHNet portrait harmonization")
    parser.add_argument("--version", action=_Versions, nargs=0, default=argparse.SUPPRESS,
                        help="print the versions of phnet, torch (with its build), torchvision, numpy, Pillow and "
                        "Python (for a bug report) and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=argparse.ArgumentParser)

    h = sub.add_parser("harmonize", help="harmonize a composite (or a folder of them) given the subject mask")
    h.add_argument("composite", help="composite image, or a folder of them")
    h.add_argument("mask", nargs="?", help="subject mask (white = subject), or a folder; default: the alpha channel")
    h.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, .tif, .bmp), or a folder "
                   "(ending in /, an existing folder, or a name without an extension; created if needed) that gets "
                   "NAME.png for each composite NAME.*")
    h.add_argument("--weights", help="weights file, model folder, Hub repo id owner/name[@revision][:FILE in the "
                   f"repo], or official weights by name ({', '.join(OFFICIAL_NAMES)}: downloaded on first use, "
                   "under the authors' CC BY-SA 4.0-variant licence; the ffhqh ones also under FFHQ's "
                   "non-commercial terms) (default: the bundled weights, offline, tuned to do no harm)")
    h.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    h.add_argument("--mask-as-given", action="store_true",
                   help="use a mask that covers most of the picture and of its border with a hole in the middle, "
                   "which is refused as looking inverted (with --temporal, when most frames' masks do; subjects at "
                   "both sides of the picture look the same)")
    h.add_argument("--mask-is-alpha", action="store_true",
                   help="the subject was pasted with this mask as its alpha (its soft edge mixes subject and "
                   "background), so that edge gets its whole change; without it a soft edge is read as a feather "
                   "(methods correction and guided; on a feathered mask it undoes the feather)")
    h.add_argument("--strength", type=float, default=1.0, help="0 = unchanged, 1 = full harmonization")
    h.add_argument("--threshold", type=float, metavar="RMS",
                   help="do-no-harm threshold (0-255 RMS) instead of the weights' own: corrections smaller than it "
                   "are dropped (the bundled weights keep part of them), those just above it shortened. Lower "
                   "it to apply more of each correction (0 = the raw network, which may harm near-right composites; "
                   "a subject with under 3%% background stays as it was); raise it to hold back all but large ones")
    h.add_argument("--mode", choices=MODES, default="full",
                   help="full resolution (default) or the official square pipeline")
    h.add_argument("--method", choices=METHODS, help="how the result reaches full resolution (mode full; default "
                   "correction)")
    h.add_argument("--working-size", type=int,
                   help="override the network's working resolution (a multiple of 8 from 16)")
    h.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    h.add_argument("--dtype", choices=PRECISIONS, default="auto",
                   help="compute precision; auto (default) = bf16 on CPUs with AMX, else fp32")
    h.add_argument("--compare", help="also write a before/after comparison image here (with a folder of "
                   "composites: any value writes NAME_compare.png beside each result; not with --temporal)")
    h.add_argument("--reference", help="mask of the background region the subject should match (white = match "
                   "this), or a folder of them named like the composites")
    h.add_argument("--temporal", type=float, nargs="?", const=TEMPORAL_SIGMA, metavar="SIGMA",
                   help="the folder is a clip (natural name order): smooth the correction with a Gaussian of SIGMA "
                   "frames (default 3; it reaches 3 SIGMA each way), never across a detected cut")
    h.add_argument("--cut-threshold", type=float, help="background change (above 0, in 0-255 "
                   "units) that counts as a cut in --temporal mode (default 20)")

    c = sub.add_parser("convert", help="official .pth checkpoint to config.json + model.safetensors")
    c.add_argument("checkpoint", help="the official PHNet checkpoint file (.pth)")
    c.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write config.json and model.safetensors into")
    c.add_argument("--config", choices=OFFICIAL_PRESETS, help="architecture (default: inferred from shapes)")
    c.add_argument("--overwrite", action="store_true", help="replace the weights already in OUT_DIR")
    c.add_argument("--push-to-hub", metavar="REPO", help="also upload the converted weights to this Hub repo")
    parser.harmonize_parser = h  # parsed on its own in main(), options anywhere between its files
    return parser


def _check_quotes(argv: list[str], windows: bool = os.name == "nt") -> None:
    """Windows reads ``"C:\\out\\" --compare x`` as the one argument ``C:\\out" --compare x``: the backslash
    escapes the closing quote. No Windows path or option holds a ``"``, so an argument that does is this slip."""
    for value in argv if windows else ():
        if '"' in value:
            raise SystemExit(f"error: the argument {value} holds a quote: on Windows a backslash before a closing "
                             'quote escapes it, and what follows joins the argument. End the path without the '
                             'backslash ("C:\\out") or double it ("C:\\out\\\\")')


def _temporal_given_its_value(argv: list[str]) -> list[str]:
    """``--temporal`` followed by a folder, not a number, is the flag alone (its value is optional): argparse took
    the composites folder for its SIGMA when it was written first."""
    out = list(argv)
    for i, token in enumerate(argv):
        # (as argparse reads it, shortened too: --te, --temp; --t is also --threshold's)
        named = len(token) >= 4 and "--temporal".startswith(token)
        if named and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            try:
                float(argv[i + 1])
            except ValueError:
                out.insert(i + 1, str(TEMPORAL_SIGMA))
                break
    return out


def _after_double_dash(argv: list[str]) -> list[str]:
    """The names after ``--`` as paths argparse cannot take for options (``-c.png`` as ``./-c.png``): the
    intermixed parsing that lets options come between the names takes them for options otherwise. ``--`` stays:
    a name after it is never an option's value (``--temporal -- 5``, a clip folder named 5)."""
    if "--" not in argv:
        return argv
    at = argv.index("--")
    return argv[: at + 1] + [os.path.join(".", a) if a.startswith("-") else a for a in argv[at + 1:]]


class _Versions(argparse.Action):
    """phnet's version and those of what it runs on, on one line (argparse's own version action folds it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import platform
        from importlib import metadata

        import torch  # its own version names its build (+cu130, +cpu), which the package's does not

        from .. import __version__

        found = [f"torch {torch.__version__}"]
        for name in ("torchvision", "numpy", "pillow"):
            try:
                found.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                found.append(f"{name} not found")
        print(f"phnet {__version__} ({', '.join(found)}; Python {platform.python_version()})")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    """Run the ``phnet`` command on ``argv`` (default: the process's arguments); its exit code: 1 where files failed
    (or an upload), 2 for bad weights or input or an unreachable Hub, 128 + the signal's number when stopped. A
    refusal before the work raises ``SystemExit`` with its message (:func:`entry` exits with 2 for it)."""
    return _main(sys.argv[1:] if argv is None else list(argv), quietly=False)


def _main(argv: list[str], quietly: bool) -> int:
    # the `phnet` command's own process: Ctrl-C before its work starts (torch loading) ends it at once and quietly;
    # a program that calls main keeps its own Ctrl-C
    with loading_quietly() if quietly else contextlib.nullcontext():
        args = _parsed(argv)
        run = _work(args.command)  # torch loads here, not for --help or a mistyped option
        from .messages import say
    logger = logging.getLogger("phnet")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the CLI says per file what the library would log
    stdout, stderr = sys.stdout, sys.stderr
    if stdout is not None:  # None under pythonw: nothing is shown, nothing to guard
        sys.stdout = _ReaderMayLeave(stdout)
    if stderr is not None:  # (the progress bar and each picture's error go there: `2>&1 | head` too)
        sys.stderr = _ReaderMayLeave(stderr)
    guards = [sys.stdout, sys.stderr]
    handlers = _stop_on_signals()
    try:
        told: set[str] = set()

        def show(message, *rest, **kw) -> None:
            # once a run: a clip reads each frame and mask twice (and its masks before that), each read telling of
            # a damaged file again
            if str(message) not in told:
                told.add(str(message))
                say(f"warning: {message}", sys.stderr)

        with warnings.catch_warnings():  # a library warning reads as one line, like the CLI's own
            # (above a folder run's progress bar, not after it on its line)
            warnings.showwarning = show
            return run(args)
    except (ValueError, OSError) as e:  # bad weights or input, an unreachable Hub: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or a kill: every file is written whole or not at all
        print("interrupted; files written so far are complete", file=sys.stderr)
        return interrupted_status(getattr(e, "signum", signal.SIGINT))
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        sys.stdout, sys.stderr = stdout, stderr
        for guard in guards:
            if isinstance(guard, _ReaderMayLeave):
                guard.close_nothing()
        logger.setLevel(level)


def _parsed(argv: list[str]) -> argparse.Namespace:
    _check_quotes(argv)
    parser = build_parser()
    if argv[:1] == ["harmonize"]:  # `a.png -o x.png mask.png` too: argparse's sub-parsers take no options there
        args = parser.harmonize_parser.parse_intermixed_args(_temporal_given_its_value(
            _after_double_dash(argv[1:])))
        args.command = "harmonize"
    else:
        args = parser.parse_args(argv)
    return args


def _work(command: str) -> Callable[[argparse.Namespace], int]:
    """The sub-command's function, its modules imported."""
    if command == "harmonize":
        from .harmonize import harmonize

        return harmonize
    from .convert import convert

    importlib.import_module("..weights", __package__)  # what convert() loads first (torch): before its run
    return convert


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a kill, a closed terminal), raised where the run stands as Ctrl-C is: the file being
    written is removed, not left as a hidden temporary one."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> dict:
    """Handlers for SIGTERM and SIGHUP that stop the run as Ctrl-C does; the ones they replace, to put back."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set them
        return {}
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        # only the default (the process dies): nohup's "ignore" and a caller's own handler stay as they are
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _raise_stopped)
    return previous


def _raise_stopped(signum, frame) -> None:
    raise _Stopped(signum)


class _ReaderMayLeave:
    """stdout or stderr that goes quiet when its reader leaves (``phnet harmonize ... | head -1``): a closed pipe
    failed every later picture, though each was written, and ended the run without its summary."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._nothing: TextIO | None = None  # what the run writes to once the reader left

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._leave()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._leave()

    def _leave(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # Python's own flush at exit meets the pipe no more
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self._stream.fileno())
            finally:
                os.close(null)
        self._stream = self._nothing = open(os.devnull, "w")  # the rest of the run writes to nothing

    def close_nothing(self) -> None:
        """Close what the run wrote to after the reader left (``main`` called in a program: two descriptors per
        run, for good)."""
        if self._nothing is not None:
            self._nothing.close()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def entry() -> None:
    """The ``phnet`` command. A refused input (a ``SystemExit`` carrying its message) exits with 2, as
    argparse's own errors and the library's refusals do; 1 stays for a run in which some files failed."""
    try:
        code = _main(sys.argv[1:], quietly=True)
    except SystemExit as e:
        if not isinstance(e.code, str):
            raise
        print(e.code, file=sys.stderr)
        code = 2
    sys.exit(code)
