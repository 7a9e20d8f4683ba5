"""PHNet portrait harmonization (Efremyan et al., arXiv 2402.17561) in plain PyTorch."""

from typing import TYPE_CHECKING

from .config import PRESETS, PHNetConfig

if TYPE_CHECKING:  # what __getattr__ gives, named for editors and type checkers, which do not run it
    from .harmonizer import Harmonizer
    from .modeling import PHNet

__version__ = "0.1.0"
__all__ = ["PHNetConfig", "PHNet", "Harmonizer", "PRESETS", "__version__"]


def __getattr__(name: str):
    # torch (and, for Harmonizer, the Hub client) load on first use: `import phnet` stays light for the
    # ComfyUI entry point, and the `phnet` command can answer Ctrl-C while they load
    try:
        if name == "PHNet":
            from .modeling import PHNet

            return PHNet
        if name == "Harmonizer":
            from .harmonizer import Harmonizer

            return Harmonizer
    except AttributeError as e:  # raised here it would read as "phnet has no Harmonizer", hiding the cause
        raise ImportError(f"phnet.{name} could not be imported: {e}") from e
    raise AttributeError(f"module 'phnet' has no attribute {name!r}")
