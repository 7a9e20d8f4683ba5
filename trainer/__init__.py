"""Training, evaluation and data-set tools for PHNet.

Entry points (all ``python -m``):

* ``trainer.fit``       train or fine-tune (single process, or ``torchrun`` for DDP)
* ``trainer.evaluate``  score weights on a data set, with baselines, tables and a grid
* ``trainer.synth``     write a synthetic harmonisation set (FFHQH layout) from a photo folder
* ``trainer.push``      upload a checkpoint folder to the Hugging Face Hub

The package depends on :mod:`phnet` (the library); :mod:`phnet` never imports it.
"""
