"""``modules/images.py``: ``resize_image`` with the img2img resize modes, as the WebUI applies them to the
inpaint mask it pastes the original back through (0 stretch, 1 crop the middle, 2 pad; 3 as 2)."""

from PIL import Image


def resize_image(resize_mode, im, width, height, upscaler_name=None):
    if resize_mode == 0:
        return im.resize((width, height), resample=Image.LANCZOS)
    wider = width / height > im.width / im.height  # the target is wider than the picture
    if resize_mode == 1:  # fill the target, crop the overflow
        w, h = (width, im.height * width // im.width) if wider else (im.width * height // im.height, height)
    else:  # fit inside the target; the borders take the picture's edge rows/columns
        w, h = (im.width * height // im.height, height) if wider else (width, im.height * width // im.width)
    fitted = im.resize((w, h), resample=Image.LANCZOS)
    out = Image.new("RGB", (width, height))
    left, top = width // 2 - w // 2, height // 2 - h // 2
    out.paste(fitted, box=(left, top))
    if resize_mode != 1:
        if wider and left > 0:
            out.paste(fitted.crop((0, 0, 1, h)).resize((left, h)), box=(0, top))
            out.paste(fitted.crop((w - 1, 0, w, h)).resize((width - left - w, h)), box=(left + w, top))
        elif not wider and top > 0:
            out.paste(fitted.crop((0, 0, w, 1)).resize((w, top)), box=(left, 0))
            out.paste(fitted.crop((0, h - 1, w, h)).resize((w, height - top - h)), box=(left, top + h))
    return out
