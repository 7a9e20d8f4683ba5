"""``modules/devices.py``: ``device`` is the torch device generation runs on (CPU here)."""

import torch

cpu = torch.device("cpu")
device = cpu
