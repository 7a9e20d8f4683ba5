"""The names an option may take (modes, full-resolution methods, precisions), in a module that loads no torch:
the ``phnet`` command's parser offers them, and ``phnet --help`` or a mistyped option is answered before torch
loads. The modules that act on them (:mod:`phnet.options`, :mod:`phnet.fullres`, :mod:`phnet.precision`) give
them under their old names too."""

MODES = ("full", "official")  # the full-resolution pipeline, or the official square one
METHODS = ("correction", "guided", "resize")  # how a result reaches full resolution (phnet.fullres)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # auto: the one that pays on the device (phnet.precision)
