"""Stand-ins for the ComfyUI core nodes our workflows use, with the same inputs/outputs and the same
behaviour that matters here (LoadImage's MASK is 1 - alpha, and 64x64 zeros without alpha; SaveImage
writes PNGs into the output folder). Diffusion nodes are described (for validation) but not runnable.
"""

from __future__ import annotations

import os

import numpy as np


def _fp():
    import folder_paths

    return folder_paths


class LoadImage:
    @classmethod
    def INPUT_TYPES(cls):
        d = _fp().get_input_directory()
        files = sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))
        return {"required": {"image": (files, {"image_upload": True})}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"

    def load_image(self, image):
        import torch
        from PIL import Image

        img = Image.open(_fp().get_annotated_filepath(image))
        rgb = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)[None]
        if "A" in img.getbands():
            mask = 1.0 - torch.from_numpy(np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0)
        else:
            mask = torch.zeros((64, 64), dtype=torch.float32)
        return (rgb, mask[None])


class LoadImageMask:
    """One channel of a picture as a MASK (alpha inverted), 64x64 zeros when the channel is missing."""

    @classmethod
    def INPUT_TYPES(cls):
        d = _fp().get_input_directory()
        files = sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))
        return {"required": {"image": (files, {"image_upload": True}), "channel": (["alpha", "red", "green", "blue"],)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"

    def load_image(self, image, channel):
        import torch
        from PIL import Image

        img = Image.open(_fp().get_annotated_filepath(image))
        if img.getbands() != ("R", "G", "B", "A"):
            img = img.convert("RGBA")
        band = channel[0].upper()
        mask = torch.from_numpy(np.asarray(img.getchannel(band), dtype=np.float32) / 255.0)
        if band == "A":
            mask = 1.0 - mask
        return (mask[None],)


class SaveImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    kind = "output"

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        from PIL import Image

        base = _fp().get_output_directory() if self.kind == "output" else _fp().get_temp_directory()
        folder = os.path.join(base, os.path.dirname(filename_prefix))
        os.makedirs(folder, exist_ok=True)
        results = []
        for i, img in enumerate(images):
            arr = (img.cpu().numpy().clip(0, 1) * 255.0 + 0.5).astype(np.uint8)
            name = f"{os.path.basename(filename_prefix)}_{i:05}_.png"
            Image.fromarray(arr).save(os.path.join(folder, name))
            results.append({"filename": name, "subfolder": os.path.dirname(filename_prefix), "type": self.kind})
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    kind = "temp"

    def save_images(self, images, filename_prefix="ComfyUI_temp_preview", prompt=None, extra_pnginfo=None):
        return super().save_images(images, filename_prefix, prompt, extra_pnginfo)


class PreviewAny:
    """comfy_extras/nodes_preview_any.py: a value shown as text on the node."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("*", {})}}

    RETURN_TYPES = ()
    FUNCTION = "main"
    OUTPUT_NODE = True

    def main(self, source=None):
        return {"ui": {"text": (source if isinstance(source, str) else str(source),)}}


class InvertMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "invert"

    def invert(self, mask):
        return (1.0 - mask,)


class ImageBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"

    def batch(self, image1, image2):
        import torch

        if image1.shape[1:] != image2.shape[1:]:
            image2 = torch.nn.functional.interpolate(
                image2.movedim(-1, 1), size=image1.shape[1:3], mode="bilinear", align_corners=False
            ).movedim(1, -1)
        return (torch.cat((image1, image2), dim=0),)


def _not_runnable(*a, **k):
    raise RuntimeError("diffusion nodes are not runnable in the unit tests")


def _spec_only(name, inputs, outputs):
    return type(name, (), {"INPUT_TYPES": classmethod(lambda cls: inputs), "RETURN_TYPES": outputs,
                           "FUNCTION": "run", "run": _not_runnable})


SAMPLERS = ["euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal"]

CheckpointLoaderSimple = _spec_only(
    "CheckpointLoaderSimple",
    {"required": {"ckpt_name": (["v1-5-pruned-emaonly-fp16.safetensors"],)}},
    ("MODEL", "CLIP", "VAE"),
)
CLIPTextEncode = _spec_only(
    "CLIPTextEncode", {"required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP",)}}, ("CONDITIONING",)
)
EmptyLatentImage = _spec_only(
    "EmptyLatentImage",
    {"required": {"width": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                  "height": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                  "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}},
    ("LATENT",),
)
KSampler = _spec_only(
    "KSampler",
    {"required": {"model": ("MODEL",),
                  "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
                  "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                  "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                  "sampler_name": (SAMPLERS,), "scheduler": (SCHEDULERS,),
                  "positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "latent_image": ("LATENT",),
                  "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0})}},
    ("LATENT",),
)
VAEDecode = _spec_only("VAEDecode", {"required": {"samples": ("LATENT",), "vae": ("VAE",)}}, ("IMAGE",))

NODE_CLASS_MAPPINGS = {
    "LoadImage": LoadImage, "LoadImageMask": LoadImageMask, "SaveImage": SaveImage, "PreviewImage": PreviewImage,
    "PreviewAny": PreviewAny, "InvertMask": InvertMask,
    "ImageBatch": ImageBatch, "CheckpointLoaderSimple": CheckpointLoaderSimple, "CLIPTextEncode": CLIPTextEncode,
    "EmptyLatentImage": EmptyLatentImage, "KSampler": KSampler, "VAEDecode": VAEDecode,
}
