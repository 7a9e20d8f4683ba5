"""``modules/shared.py``: the options, command-line flags and job state scripts read."""

from types import SimpleNamespace

opts = SimpleNamespace(overlay_inpaint=True, samples_format="png", img2img_color_correction=False)
cmd_opts = SimpleNamespace(lowvram=False, medvram=False, ui_debug_mode=True, api=False)
state = SimpleNamespace(interrupted=False, skipped=False, job="")
