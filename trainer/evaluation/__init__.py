"""The pieces of ``python -m trainer.evaluate`` (``trainer/evaluate.py``: the command and its scoring loop).

* ``candidates``  the weights being compared (``--weights``, labels) and the baselines beside them
* ``scoring``     each sample's metrics, its buckets, and the tables' means
* ``report``      the Markdown report, the per-image table, writing ``results.json`` / ``results.md`` / the grid
* ``grid``        the before/after picture grid
* ``data_table``  the ``[data]`` table a scoring command reads (a run's, ``--data``, ``--split all``), shared
  with ``trainer.calibrate``
"""
