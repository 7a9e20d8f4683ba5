"""Colour-space helpers shared by the synthesis code and the classical baseline.

Arrays are float HxWx3 in [0, 1] (sRGB). CIE Lab with a D65 white point.
"""
from __future__ import annotations

import numpy as np

_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375],
     [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]], dtype=np.float64)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = 216 / 24389
_KAPPA = 24389 / 27

# Rec. 601 luma weights, used for saturation and the YIQ hue rotation.
LUMA = np.array([0.299, 0.587, 0.114])


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, None)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    xyz = srgb_to_linear(np.asarray(rgb, np.float64)) @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16) / 116
    fx = fy + lab[..., 1] / 500
    fz = fy - lab[..., 2] / 200
    f = np.stack([fx, fy, fz], axis=-1)
    f3 = f ** 3
    xyz = np.where(f3 > _EPS, f3, (116 * f - 16) / _KAPPA)
    # L alone decides Y exactly (standard inverse)
    xyz[..., 1] = np.where(lab[..., 0] > _KAPPA * _EPS, fy ** 3, lab[..., 0] / _KAPPA)
    rgb = linear_to_srgb((xyz * _WHITE) @ _XYZ_TO_RGB.T)
    return np.clip(rgb, 0.0, 1.0)


def masked_stats(x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted per-channel mean and std of HxWxC ``x`` with HxW weights."""
    w = weight.astype(np.float64)[..., None]
    total = max(float(w.sum()), 1e-8)
    mean = (x * w).sum(axis=(0, 1)) / total
    var = (((x - mean) ** 2) * w).sum(axis=(0, 1)) / total
    return mean, np.sqrt(np.maximum(var, 0.0))
