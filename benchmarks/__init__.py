"""Studies and speed checks that need a checkout (and, for some, the trainer's data). Run them in the
environment of the README's first command: ``python benchmarks/pipeline_speed.py`` or
``python -m benchmarks.pipeline_speed``."""
