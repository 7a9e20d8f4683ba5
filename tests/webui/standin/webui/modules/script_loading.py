"""``modules/script_loading.py``: how every ``scripts/*.py`` file is executed.

The module object is built from the file and executed under the file's base name (``name.py``),
and it is NOT added to ``sys.modules``: code that looks its own module up by name finds nothing.
"""

import importlib.util
import os

loaded_scripts = {}


def load_module(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded_scripts[path] = module
    return module
