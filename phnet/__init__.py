"""PHNet portrait harmonization (Efremyan et al., arXiv 2402.17561) in plain PyTorch."""

from .config import PRESETS, PHNetConfig
from .modeling import PHNet

__version__ = "0.1.0"
__all__ = ["PHNetConfig", "PHNet", "Harmonizer", "PRESETS", "__version__"]


def __getattr__(name: str):
    # Harmonizer pulls in the Hub client; keep `import phnet` light for the ComfyUI entry point
    if name == "Harmonizer":
        from .harmonizer import Harmonizer

        return Harmonizer
    raise AttributeError(f"module 'phnet' has no attribute {name!r}")
