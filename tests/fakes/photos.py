"""Real photographs that ship inside installed packages, labelled with the ImageNet class they show.

Random-weight models and noise images make arbitrary, near-tied predictions: any check of numerical
agreement on them depends on the CPU's kernels and summation order. Real photos through real weights give
confident predictions that such differences cannot flip.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from PIL import Image

#: name → (module, file inside it, wnid of what the photo shows)
PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png", "n03379051"),  # helmet (the nearest ImageNet class)
    "camera": ("skimage", "data/camera.png", "n04485082"),  # tripod
    "chelsea": ("skimage", "data/chelsea.png", "n02123045"),  # tabby
    "coffee": ("skimage", "data/coffee.png", "n07920052"),  # espresso
    "motorcycle_left": ("skimage", "data/motorcycle_left.png", "n03785016"),  # moped
    "motorcycle_right": ("skimage", "data/motorcycle_right.png", "n03785016"),
    "rocket": ("skimage", "data/rocket.jpg", "n03773504"),  # missile
    "china": ("sklearn", "datasets/images/china.jpg", "n03877845"),  # palace
    "flower": ("sklearn", "datasets/images/flower.jpg", "n11939491"),  # daisy
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "n03763968"),  # military uniform
}


def photo_path(name: str) -> Path:
    module, relative, _ = PHOTOS[name]
    return Path(importlib.import_module(module).__file__).parent / relative


def real_photo(name: str) -> Image.Image:
    """The photo as an RGB image."""
    with Image.open(photo_path(name)) as image:
        return image.convert("RGB")
