"""Subject masks for pictures that come without one (the package-portrait builder's masks).

1. *person*: OpenCV's Haar frontal-face cascade (shipped in ``opencv-python-headless`` < 5)
   finds the largest face; a person-shaped region around it (face core = sure foreground,
   a body-sized box under it = probable foreground, everything else = sure background)
   seeds GrabCut. The result is cleaned (largest component holding the face, holes filled).
2. *object*: no face -> GrabCut initialised with a central rectangle (the picture's subject).
3. *random*: neither gives an acceptable mask -> a smooth random blob (union of ellipses).

A mask is acceptable when it covers between ``MIN_FG`` and ``MAX_FG`` of the picture and is
mostly one piece. GrabCut runs at ``GRABCUT_SIDE`` px on the long side; OpenCV's RNG is seeded
before each run and OpenCV is single-threaded, so a seed gives the same mask every time.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

MIN_FG, MAX_FG = 0.04, 0.65
GRABCUT_SIDE = 320  # GrabCut runs at this long side (speed); the mask is upsampled after


def load_cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - message only
        raise SystemExit("this builder needs OpenCV and the photo packages: pip install \"comfyui-phnet[data]\" "
                         "(in a checkout: pip install -e \".[data]\"; OpenCV alone: 'opencv-python-headless<5')") from e
    if not hasattr(cv2, "CascadeClassifier"):
        raise SystemExit("OpenCV 5 dropped the Haar cascades: pip install 'opencv-python-headless<5'")
    cv2.setNumThreads(1)
    return cv2


def resize_long(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return rgb, 1.0
    im = Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
    return np.asarray(im), s


def _clean(fg: np.ndarray, seed_point: tuple[int, int] | None) -> np.ndarray:
    """Keep the component holding ``seed_point`` (else the largest), fill its holes."""
    cv2 = load_cv2()
    fg = fg.astype(np.uint8)
    k = np.ones((5, 5), np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, k)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, k)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros_like(fg, bool)
    pick = 0
    if seed_point is not None:
        pick = lab[seed_point[1], seed_point[0]]
    if pick == 0:
        pick = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (lab == pick).astype(np.uint8)
    # fill holes: flood the background from the border, whatever it doesn't reach is a hole
    pad = np.pad(comp, 1)
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((pad.shape[0] + 2, pad.shape[1] + 2), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (comp.astype(bool) | holes)


def acceptable(mask: np.ndarray) -> bool:
    f = float(mask.mean())
    return MIN_FG <= f <= MAX_FG


def detect_face(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """Largest frontal face (x, y, w, h) or None."""
    cv2 = load_cv2()
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    casc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    side = min(gray.shape)
    faces = casc.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6,
                                  minSize=(max(16, side // 12),) * 2)
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(w), int(h)


def person_mask(rgb: np.ndarray, face: tuple[int, int, int, int], seed: int,
                body_width: float = 1.8) -> np.ndarray | None:
    """Face-seeded GrabCut for the person around ``face`` (coordinates in ``rgb``).

    The body may reach ``body_width`` face widths either side of the face centre.
    """
    cv2 = load_cv2()
    H, W = rgb.shape[:2]
    x, y, w, h = face
    cx = x + w / 2
    gc = np.full((H, W), cv2.GC_BGD, np.uint8)

    def box(x0, y0, x1, y1, val):
        x0, x1 = int(max(0, x0)), int(min(W, x1))
        y0, y1 = int(max(0, y0)), int(min(H, y1))
        if x1 > x0 and y1 > y0:
            gc[y0:y1, x0:x1] = val

    box(cx - 0.9 * w, y - 0.6 * h, cx + 0.9 * w, y + 1.4 * h, cv2.GC_PR_FGD)    # head + hair
    box(cx - body_width * w, y + 1.1 * h, cx + body_width * w, y + 7.0 * h, cv2.GC_PR_FGD)  # shoulders, body
    box(x + 0.2 * w, y + 0.2 * h, x + 0.8 * w, y + 0.9 * h, cv2.GC_FGD)         # face core
    box(cx - 0.35 * w, y + 1.25 * h, cx + 0.35 * w, y + 1.9 * h, cv2.GC_PR_FGD)  # neck
    cv2.setRNGSeed(seed % (2**31))
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    m = _clean(fg, (int(cx), int(min(H - 1, y + h / 2))))
    face_cover = m[y:y + h, x:x + w].mean() if w and h else 0
    if not acceptable(m) or face_cover < 0.5:
        return None
    return m


def object_mask(rgb: np.ndarray, seed: int) -> np.ndarray | None:
    """GrabCut from a central rectangle: the picture's main subject."""
    cv2 = load_cv2()
    H, W = rgb.shape[:2]
    rect = (int(0.12 * W), int(0.10 * H), int(0.76 * W), int(0.85 * H))
    gc = np.zeros((H, W), np.uint8)
    cv2.setRNGSeed(seed % (2**31))
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), gc, rect, bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    total = fg.sum()
    m = _clean(fg, None)
    if total == 0 or m.sum() < 0.8 * total or not acceptable(m):
        return None
    return m


def random_shape_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth blob: union of 1-3 rotated ellipses, blurred and re-thresholded."""
    cv2 = load_cv2()
    for _ in range(50):
        m = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            c = (int(rng.uniform(0.25, 0.75) * w), int(rng.uniform(0.25, 0.8) * h))
            ax = (int(rng.uniform(0.08, 0.3) * w), int(rng.uniform(0.1, 0.4) * h))
            cv2.ellipse(m, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        k = 2 * (min(h, w) // 20) + 1
        m = cv2.GaussianBlur(m.astype(np.float32), (k, k), 0) > 0.5
        if acceptable(m):
            return m
    raise RuntimeError("could not draw an acceptable random mask")  # pragma: no cover


def subject_mask(rgb: np.ndarray, seed: int) -> tuple[np.ndarray, str, tuple | None]:
    """(mask at rgb's size, method, face box at rgb's size or None)."""
    small, s = resize_long(rgb, GRABCUT_SIDE)
    face = detect_face(small)
    m, method = None, ""
    if face is not None:
        m, method = person_mask(small, face, seed), "person"
    if m is None:
        m, method = object_mask(small, seed), "object"
    if m is None:
        sh, sw = small.shape[:2]
        m, method = random_shape_mask(sh, sw, np.random.default_rng(seed)), "random"
    H, W = rgb.shape[:2]
    if s != 1.0:
        m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((W, H), Image.Resampling.BILINEAR)) >= 128
        if face is not None:
            x, y, w, h = (int(round(v / s)) for v in face)
            face = (x, y, w, h)
    return m, method, face
