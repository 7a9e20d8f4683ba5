"""Loss / metric curves drawn with PIL (no matplotlib): one PNG, two panels."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from phnet.atomic import picture_writer, write_atomic

BG, AXIS, GRID, TEXT = (255, 255, 255), (60, 60, 60), (228, 228, 228), (30, 30, 30)
RAW, SMOOTH, VAL, BASE = (170, 200, 235), (31, 100, 180), (214, 90, 30), (120, 120, 120)


def _nice_ticks(lo: float, hi: float, n: int = 5, whole: bool = False) -> list[float]:
    """About ``n`` evenly spaced round values from lo to hi; ``whole``: whole numbers only (steps, photos)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi)):  # equal, or a few ulps apart: a step would not move a tick on
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    steps = [m * mag for m in (1, 2, 2.5, 5, 10)]
    if whole:  # 1, 2, 5, 10, 20, 25, ... apart
        steps = [s for s in steps if s >= 1 and s == round(s)] or [1.0]
    step = min((s for s in steps if s >= raw), default=10 * mag)
    start = math.ceil(lo / step) * step
    ticks, v = [], start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _fmt(v: float, step: float | None = None) -> str:
    """A tick label; ``step`` (the ticks' spacing) sets the decimals, so that neighbouring ticks never read the
    same (0.995, 1.000, 1.005, not 1, 1, 1.01)."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 10000:  # thousands, with the decimals the spacing needs (12.5k, not 12k)
        label = _fmt(v / 1000, step / 1000) if step else f"{v / 1000:.0f}"
        return (label.rstrip("0").rstrip(".") if "." in label else label) + "k"
    if step:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        decimals += abs(round(step, decimals) - step) > 1e-9 * step  # a step of 2.5 × 10^k needs one more
        return f"{v:.{decimals}f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _step(ticks: list[float]) -> float | None:
    return ticks[1] - ticks[0] if len(ticks) > 1 else None


HUGE = 1e9  # a loss beyond it has diverged; in running sums it would drown the later windows' digits


def _smooth(values: list[float]) -> list[float]:
    """Centred moving average (no lag), window ~1/20 of the run, from running sums: a window holding a value
    that is not finite or is huge (a diverged loss) is NaN, and left out of the plot."""
    half = max(0, len(values) // 40)
    sums, bad = [0.0], [0]
    for v in values:
        finite = math.isfinite(v) and abs(v) < HUGE
        sums.append(sums[-1] + (v if finite else 0.0))
        bad.append(bad[-1] + (not finite))
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append((sums[hi] - sums[lo]) / (hi - lo) if bad[hi] == bad[lo] else math.nan)
    return out


def _x_range(lo: float, hi: float) -> tuple[float, float]:
    """The x axis of values from lo to hi: a single value one either side, in the middle."""
    return (lo - 1, hi + 1) if hi <= lo else (lo, hi)


def panel(draw: ImageDraw.ImageDraw, box, title: str, xlabel: str, ylabel: str, series, font) -> None:
    """series: list of (points [(x, y)], colour, width, dashed); x counts something (steps, photos), so its ticks
    are whole numbers. A dashed series is drawn every other segment: give it many points (``spread``)."""
    x0, y0, x1, y1 = box
    left, right, top, bottom = x0 + 52, x1 - 12, y0 + 26, y1 - 40
    draw.text((x0 + (x1 - x0) // 2, y0 + 6), title, fill=TEXT, font=font, anchor="mt")
    pts = [p for s in series for p in s[0] if math.isfinite(p[1])]
    if not pts:
        draw.text(((left + right) // 2, (top + bottom) // 2), "no data yet", fill=AXIS, font=font, anchor="mm")
        return
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xlo, xhi = _x_range(min(xs), max(xs))
    ylo, yhi = min(ys), max(ys)
    pad = (yhi - ylo) * 0.05 or abs(yhi) * 0.05 or 1.0
    ylo, yhi = ylo - pad, yhi + pad

    def tx(x):
        return left + (x - xlo) / (xhi - xlo) * (right - left)

    def ty(y):
        return bottom - (y - ylo) / (yhi - ylo) * (bottom - top)

    ys, xs = _nice_ticks(ylo, yhi), _nice_ticks(xlo, xhi, whole=True)
    for t in ys:
        if ylo <= t <= yhi:
            draw.line([(left, ty(t)), (right, ty(t))], fill=GRID)
            draw.text((left - 4, ty(t)), _fmt(t, _step(ys)), fill=TEXT, font=font, anchor="rm")
    for t in xs:
        if xlo <= t <= xhi:
            draw.line([(tx(t), bottom), (tx(t), bottom + 4)], fill=AXIS)
            draw.text((tx(t), bottom + 6), _fmt(t, _step(xs)), fill=TEXT, font=font, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS, width=1)
    draw.text(((left + right) // 2, y1 - 6), xlabel, fill=TEXT, font=font, anchor="mb")
    draw.text((x0 + 4, top - 14), ylabel, fill=TEXT, font=font, anchor="lt")
    for points, colour, width, dashed in series:
        pts = [(tx(x), ty(y)) for x, y in points if math.isfinite(y)]
        if len(pts) == 1:
            x, y = pts[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        elif dashed:
            for i in range(len(pts) - 1):
                if i % 2 == 0:
                    draw.line([pts[i], pts[i + 1]], fill=colour, width=width)
        elif pts:
            draw.line(pts, fill=colour, width=width, joint="curve")


def draw_curves(records: list[dict], path: Path, size=(760, 300)) -> Path:
    """Training loss (raw and smoothed) and validation fMSE against the composite baseline."""
    font = ImageFont.load_default()
    img = Image.new("RGB", size, BG)
    draw = ImageDraw.Draw(img)
    w, h = size
    train = [(r["step"], r["loss"]) for r in records if r.get("type") == "train" and "loss" in r]
    val = [(r["step"], r["fmse"]) for r in records if r.get("type") == "val" and "fmse" in r]
    base = [(r["step"], r["composite_fmse"]) for r in records
            if r.get("type") == "val" and "composite_fmse" in r]
    smooth = list(zip([p[0] for p in train], _smooth([p[1] for p in train])))
    panel(draw, (0, 0, w // 2, h), "training loss", "step", "loss",
           [(train, RAW, 1, False), (smooth, SMOOTH, 2, False)], font)
    if base:  # the do-nothing baseline as a dashed horizontal line across the panel
        xs = [p[0] for p in val] or [0]
        level = base[-1][1]
        span = [(x, level) for x in spread(min(xs), max(xs))]
        base_series = (span, BASE, 1, True)
    else:
        base_series = ([], BASE, 1, True)
    panel(draw, (w // 2, 0, w, h), "validation fMSE (dashed: composite)", "step", "fMSE",
           [base_series, (val, VAL, 2, False)], font)
    path = Path(path)
    write_atomic(path, picture_writer(img, "PNG"))
    return path


def spread(lo: float, hi: float, n: int = 40) -> list[float]:
    """n evenly spaced values across the x axis of lo to hi (``_x_range``), for a dashed line to be dashed."""
    lo, hi = _x_range(lo, hi)
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]
