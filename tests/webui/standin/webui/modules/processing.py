"""``modules/processing.py``: the processing objects (dataclasses, same field names and defaults
for what scripts read) and the order in which ``process_images`` calls the always-on scripts."""

from dataclasses import dataclass, field
from typing import Any

from modules import scripts


@dataclass(repr=False)
class StableDiffusionProcessing:
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    extra_generation_params: dict = None
    overlay_images: list = None
    denoising_strength: float = None

    scripts: Any = field(default=None, init=False)
    script_args: list = field(default=None, init=False)
    paste_to: tuple = field(default=None, init=False)
    batch_index: int = field(default=0, init=False)
    iteration: int = field(default=0, init=False)
    is_api: bool = field(default=False, init=False)

    comments: dict = field(default=None, init=False)

    def __post_init__(self):
        self.extra_generation_params = self.extra_generation_params or {}
        self.comments = {}

    def comment(self, text):
        """Shown under the generated image (A1111 1.6 and later, Forge)."""
        self.comments[text] = 1


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0

    image_mask: Any = field(default=None, init=False)
    mask_for_overlay: Any = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        # the mask given to the constructor is kept as image_mask, untouched, for the whole run
        self.image_mask = self.mask
        self.mask = None


def create_infotext(p, index=0, use_main_prompt=False):
    """The ``extra_generation_params`` part of an image's infotext (A1111 1.9 and later, Forge): a list
    value is read at the image's index in the batch, a callable one is called with the function's locals
    (``p``, ``index``, ``use_main_prompt``, ...); the grid's infotext is made with ``use_main_prompt``."""
    if use_main_prompt:
        index = 0
    generation_params = dict(p.extra_generation_params)
    for key, value in generation_params.items():
        if isinstance(value, list):
            generation_params[key] = value[index]
        elif callable(value):
            generation_params[key] = value(**locals())
    return generation_params


def postprocess_generated(p, images):
    """The part of ``process_images_inner`` around the scripts: ``process`` once before
    generation, then ``postprocess_image`` on each decoded image (after face restoration, before
    colour correction and the inpaint overlay), batch after batch (``p.iteration``, ``p.batch_index``).
    Returns the images as the scripts left them."""
    if p.scripts is not None:
        p.scripts.process(p)
    out = []
    for n, image in enumerate(images):  # n_iter batches of batch_size images
        p.iteration, p.batch_index = divmod(n, p.batch_size)
        if p.scripts is not None:
            pp = scripts.PostprocessImageArgs(image)
            p.scripts.postprocess_image(p, pp)
            image = pp.image
        out.append(image)
    return out
