"""Where the WebUI keeps things (``modules/paths.py`` + ``modules/paths_internal.py``)."""

import os
import sys

cwd = os.getcwd()
modules_path = os.path.dirname(os.path.realpath(__file__))
script_path = os.path.dirname(modules_path)  # the WebUI root
data_path = script_path  # --data-dir is not modelled
models_path = os.path.join(data_path, "models")
extensions_dir = os.path.join(data_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")

# The real module puts the WebUI root first on sys.path when it is imported.
sys.path.insert(0, script_path)
