from .features import PatchColorTransfer, PatchFeatureExtractor, SqueezeExcitationGate
from .normalization import PatchNormalization
from .phnet import PHNet

__all__ = ["PHNet", "PatchNormalization", "PatchFeatureExtractor", "PatchColorTransfer", "SqueezeExcitationGate"]
