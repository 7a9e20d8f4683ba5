"""Stand-ins for the parts of the SD-WebUI ``modules`` package the PHNet extension meets.

Each file mirrors the interface of its namesake in AUTOMATIC1111 stable-diffusion-webui v1.10.1
(commit 82a973c): the same names, signatures and call order, written here from a reading of the
originals, with everything the extension never touches left out. The tests copy this folder into
a temporary WebUI root, so ``modules`` is imported from the WebUI's working directory exactly as
``launch.py`` / ``webui.py`` import it.
"""
