"""The embedded demo benchmark: a LAION-like pool and an ImageNet-like photo set built from installed packages.

``build_demo`` renders them (see ``build.py``); ``load_labels`` reads the reviewed label manifest.
"""

from .build import DemoBuild as DemoBuild
from .build import build_demo as build_demo
from .build import default_demo_dir as default_demo_dir
from .labels import load_labels as load_labels

__all__ = ["DemoBuild", "build_demo", "default_demo_dir", "load_labels"]
