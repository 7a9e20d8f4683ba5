"""Builders for training sets made from images that ship inside installed packages.

* :mod:`trainer.datasets.package_portraits` — real photos + subject masks from
  scikit-image's ``skimage.data`` and the MIT-licensed ComfyUI template media bundles
  (``python -m trainer.datasets.package_portraits OUT``).

Images are never committed: the builders re-create the set from the installed
packages, deterministically.
"""
