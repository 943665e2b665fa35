"""The benchmark chart, drawn with Pillow (matplotlib is not a dependency).

Left: training loss per step of the fine-tuning sides. Right: each case's ratio to its
baseline (higher is better except where the label says memory), with a line at 1.0 and,
where the issue set one, the case's target as a short black bar across its column (green: the
target is met; red: it is not; grey: no target).
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

W, H, PAD = 1200, 520, 60
COLOURS = {"baseline": (150, 150, 150), "careful": (255, 127, 14), "ours": (31, 119, 180)}
# case -> (target ratio, True when higher is better)
TARGETS: dict[str, tuple[float, bool]] = {
    "fine-tune tokens/s": (1.5, True),
    "fine-tune peak memory": (1.0, False),
    "serving decode tokens/s": (0.95, True),
    "serving TTFT (direct/API)": (1 / 1.2, True),
    "serving 4 concurrent vs sequential": (1.5, True),
}


def meets(label: str, value: float) -> bool | None:
    """Whether `value` meets the case's target; None where it has none."""
    if label not in TARGETS:
        return None
    target, higher = TARGETS[label]
    return value >= target if higher else value <= target


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def draw(path: Path, losses: dict[str, list[float]], ratios: dict[str, float]) -> None:
    image = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(image)
    _losses(d, (PAD, PAD, W // 2 - PAD // 2, H - PAD), losses)
    _ratios(d, (W // 2 + PAD, PAD, W - PAD // 2, H - PAD - 20), ratios)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _axes(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str) -> None:
    x0, y0, x1, y1 = box
    d.text((x0, y0 - 40), title, fill="black", font=_font(18))
    d.line([(x0, y0), (x0, y1), (x1, y1)], fill="black", width=2)


def _losses(
    d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], losses: dict[str, list[float]]
) -> None:
    _axes(d, box, "Fine-tuning: training loss per step")
    x0, y0, x1, y1 = box
    values = [v for curve in losses.values() for v in curve]
    if not values:
        d.text((x0 + 10, y0 + 10), "(fine-tuning not run)", fill="black", font=_font(14))
        return
    spread = (max(values) - min(values)) or 1.0
    low, high = min(values) - 0.05 * spread, max(values) + 0.05 * spread
    steps = max(len(c) for c in losses.values())

    def at(i: int, v: float) -> tuple[float, float]:
        x = x0 + (x1 - x0) * (i / max(steps - 1, 1))
        return x, y1 - (y1 - y0) * (v - low) / (high - low or 1)

    for tick in range(5):
        v = low + (high - low) * tick / 4
        y = at(0, v)[1]
        d.line([(x0 - 5, y), (x0, y)], fill="black")
        d.text((x0 - 45, y - 8), f"{v:.2f}", fill="black", font=_font(12))
    for i in range(steps):
        x = at(i, low)[0]
        d.text((x - 4, y1 + 6), str(i + 1), fill="black", font=_font(12))
    d.text(((x0 + x1) // 2 - 15, y1 + 24), "step", fill="black", font=_font(13))
    for n, (side, curve) in enumerate(losses.items()):
        colour = COLOURS.get(side, (200, 80, 40))
        points = [at(i, v) for i, v in enumerate(curve)]
        size = 6 if side != "ours" else 3  # the baselines drawn wider, under ours
        if len(points) > 1:
            d.line(points, fill=colour, width=size + 1)
        for x, y in points:
            d.ellipse([x - size, y - size, x + size, y + size], fill=colour)
        d.rectangle([x1 - 150, y0 + 10 + 22 * n, x1 - 136, y0 + 24 + 22 * n], fill=colour)
        d.text((x1 - 130, y0 + 8 + 22 * n), side, fill="black", font=_font(14))


def _ratios(
    d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], ratios: dict[str, float]
) -> None:
    _axes(d, box, "Ours vs baseline (ratio; 1.0 = baseline)")
    x0, y0, x1, y1 = box
    items = [(k, v) for k, v in ratios.items() if v == v]  # drop NaN
    if not items:
        return
    top = max(max(v for _, v in items), *(t for t, _ in TARGETS.values()), 1.0) * 1.15
    scale = (y1 - y0) / top
    one = y1 - scale
    width = (x1 - x0) / len(items)
    for i, (label, value) in enumerate(items):
        bx = x0 + width * i + width * 0.2
        met = meets(label, value)
        colour = (150, 150, 150) if met is None else (44, 160, 44) if met else (214, 39, 40)
        d.rectangle([bx, y1 - scale * value, bx + width * 0.6, y1], fill=colour)
        if label in TARGETS:
            ty = y1 - scale * TARGETS[label][0]
            d.line([(bx - 6, ty), (bx + width * 0.6 + 6, ty)], fill=(0, 0, 0), width=3)
        d.text((bx, y1 - scale * value - 18), f"{value:.2f}x", fill="black", font=_font(13))
        for j, part in enumerate(_wrap(label, 11)):
            d.text((bx - 8, y1 + 6 + 14 * j), part, fill="black", font=_font(11))
    d.line([(x0, one), (x1, one)], fill=(0, 0, 0), width=1)
    d.text((x1 - 30, one - 16), "1.0", fill="black", font=_font(12))


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines
