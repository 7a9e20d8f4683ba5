"""``modules/extensions.py``: the folders under ``extensions/`` and the files they offer."""

import os

from modules import paths


class Extension:
    def __init__(self, name, path, enabled=True, is_builtin=False):
        self.name = name
        self.canonical_name = name.lower()
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin

    def list_files(self, subdir, extension):
        """Files directly inside ``<extension>/<subdir>`` with that suffix; sub-folders are not searched."""
        from modules import scripts

        folder = os.path.join(self.path, subdir)
        if not os.path.isdir(folder):
            return []
        found = [scripts.ScriptFile(self.path, name, os.path.join(folder, name)) for name in sorted(os.listdir(folder))]
        return [f for f in found if os.path.splitext(f.path)[1].lower() == extension and os.path.isfile(f.path)]


def active():
    if not os.path.isdir(paths.extensions_dir):
        return []
    names = sorted(os.listdir(paths.extensions_dir))
    return [Extension(n, os.path.join(paths.extensions_dir, n)) for n in names
            if os.path.isdir(os.path.join(paths.extensions_dir, n))]  # fmt: skip
