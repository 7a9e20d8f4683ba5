"""Training, evaluation and data-set tools for PHNet.

Entry points (all ``python -m``):

* ``trainer.fit``        train or fine-tune (single process, or ``torchrun`` for DDP)
* ``trainer.evaluate``   score weights on a data set, with baselines, tables and a grid
* ``trainer.calibrate``  choose a model's do-no-harm threshold on the validation split
* ``trainer.push``       upload a checkpoint folder to the Hugging Face Hub
* ``trainer.builders.package_portraits`` / ``trainer.builders.synthetic_set``  write a data set to disk

What each part owns:

* training, read top to bottom: ``fit`` (CLI; wires the pieces below in order) ->
  ``run_folder`` (the output folder: lock, fresh/overwrite/resume, ``run_config.json``) ->
  ``resume`` (what a resumed run may change) -> ``model`` (the network, at the working size) ->
  ``loop`` (one optimizer step, validation, checkpoints, log records) with ``run_log``
  (``log.jsonl``, ``curves.png``), ``checkpoint`` (atomic, resumable checkpoint folders),
  ``validation`` (scores and mixed precision), ``losses``, ``optim`` (Lion, schedule),
  ``distributed`` (process facts, seeding, the resumable batches);
* configuration: ``config`` (TOML layers, the ``[model]`` table, the working size) and ``configs/``;
* data read while training: ``data/`` (iHarmony4, FFHQH, photo folders; ``data/synthesis.py``
  makes composites on the fly); data written once before training: ``builders/``;
* scoring: ``evaluate`` (the command and its loop) with ``evaluation/`` (the weights compared, the metrics
  and buckets, the report and its files, the grid, the ``[data]`` table ``calibrate`` shares);
* small shared pieces: ``colour``, ``baselines``, ``curves``.

The package depends on :mod:`phnet` (the library); :mod:`phnet` never imports it.
"""
