"""Draw the module and extension icons with pillow (no fetched images).  Run from the
repository root: ``.venv/bin/python Utilities/make_icons.py``; the PNGs are committed."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
BG = (28, 54, 92, 255)
BONE = (226, 222, 208, 255)
CALC = (255, 214, 10, 255)
SIZE = 128


def _canvas():
    im = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle((2, 2, SIZE - 3, SIZE - 3), radius=22, fill=BG)
    return im, d


def _dots(d, centres, r=5):
    for x, y in centres:
        d.ellipse((x - r, y - r, x + r, y + r), fill=CALC, outline=(120, 80, 0, 255))


def hand_icon() -> Image.Image:
    im, d = _canvas()
    d.rounded_rectangle((36, 62, 92, 112), radius=12, fill=BONE)  # palm
    for x, top in ((38, 22), (52, 14), (66, 16), (80, 26)):  # fingers
        d.rounded_rectangle((x - 6, top, x + 6, 70), radius=6, fill=BONE)
    d.rounded_rectangle((86, 62, 100, 96), radius=7, fill=BONE)  # thumb
    d.polygon([(88, 64), (112, 44), (118, 52), (98, 80)], fill=BONE)
    _dots(d, [(52, 22), (38, 40), (67, 50), (108, 50), (60, 96)])
    return im


def spine_icon() -> Image.Image:
    im, d = _canvas()
    y = 12
    for n in range(5):  # vertebral bodies and discs
        d.rounded_rectangle((40, y, 88, y + 16), radius=5, fill=BONE)
        d.rectangle((90, y + 4, 110, y + 12), fill=BONE)  # posterior elements
        y += 22
    _dots(d, [(36, 32), (36, 76), (100, 56), (114, 98)], r=5)
    return im


def extension_icon() -> Image.Image:
    im, d = _canvas()
    hand = hand_icon().resize((64, 64), Image.LANCZOS)
    spine = spine_icon().resize((64, 64), Image.LANCZOS)
    im.alpha_composite(hand, (2, 32))
    im.alpha_composite(spine, (62, 32))
    return im


def effect_icon(size: int = 64) -> Image.Image:
    """The Segment Editor effect "Calcinosis": a deposit, the outline drawn around it and the
    pointer that clicked it (drawn 4x and reduced: smooth edges)."""
    big = 4 * size
    im = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    f = big / 256.0
    d.ellipse(tuple(v * f for v in (40, 56, 184, 176)), fill=CALC, outline=(120, 80, 0, 255), width=int(6 * f))
    d.ellipse(tuple(v * f for v in (22, 38, 202, 194)), outline=(40, 220, 90, 255), width=int(16 * f))
    pointer = [(118, 112), (118, 236), (148, 206), (170, 250), (194, 238), (172, 196), (214, 196)]
    d.polygon([(x * f, y * f) for x, y in pointer], fill=(255, 255, 255, 255), outline=(20, 20, 20, 255),
              width=int(6 * f))
    return im.resize((size, size), Image.LANCZOS)


def main() -> None:
    outputs = {
        ROOT / "CalcinosisQuant" / "Resources" / "Icons" / "CalcinosisQuant.png": hand_icon(),
        ROOT / "SpineCalcMap" / "Resources" / "Icons" / "SpineCalcMap.png": spine_icon(),
        ROOT / "Resources" / "SlicerCalcinosis.png": extension_icon(),
        ROOT / "CalcinosisQuant" / "Resources" / "Icons" / "SegmentEditorCalcinosis.png": effect_icon(),
    }
    for path, im in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, optimize=True)
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
