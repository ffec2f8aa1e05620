"""Regenerate the output shown in README's "Robustness checks in your test suite" section.

Builds the small synthetic 3-class result set (two models, 100 LAIONet and 50 ImageNet-val images per class,
made by ``tests/fakes/results.py`` through the real result path), writes the README's ``pyproject.toml`` and
``tests/test_robustness.py`` blocks into a temporary project, runs ``pytest --laionet-update-baseline`` and then
``pytest --laionet-json laionet-report.json`` there with the plugin, and prints the second run's output::

    .venv/bin/python scripts/readme_plugin_example.py

The code blocks are read from README.md itself, so the printed output always belongs to the example shown.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from laionet_bench.errors import ConfigError  # noqa: E402
from laionet_bench.evaluation.results import write_result  # noqa: E402
from tests.fakes.results import make_counted_result  # noqa: E402

#: model → LAIONet (top-1 correct, images) per class; ImageNet-val is the fakes' default for both.
MODELS = {
    "resnet50.a1_in1k": None,  # the fakes' default: gap 0.20, siberian husky drops most
    "convnext_tiny.fb_in1k": {"n01440764": (80, 100), "n02110185": (75, 100), "n04579432": (85, 100)},
}


def readme_block(readme: str, language: str, first_line: str) -> str:
    """The README code block in ``language`` whose first line is ``first_line`` (without that line)."""
    for body in re.findall(rf"```{language}\n(.*?)```", readme, flags=re.S):
        head, _, rest = body.partition("\n")
        if head.strip() == first_line:
            return rest
    raise ConfigError(f"README.md: no ```{language} block starting with {first_line!r}: update "
                      "scripts/readme_plugin_example.py to the README's plugin section")


def build_project(folder: Path, readme: str) -> None:
    """The README's user repository: its pyproject settings, its test file and committed results."""
    (folder / "pyproject.toml").write_text(readme_block(readme, "toml", "# pyproject.toml"), "utf-8")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_robustness.py").write_text(
        readme_block(readme, "python", "# tests/test_robustness.py"), "utf-8")
    for model, laionet in MODELS.items():
        write_result(make_counted_result(model, laionet), folder / "tests" / "laionet_results")


def main() -> int:
    readme = (ROOT / "README.md").read_text("utf-8")
    with tempfile.TemporaryDirectory(prefix="example-") as tmp:
        folder = Path(tmp)
        build_project(folder, readme)
        pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        subprocess.run([*pytest, "-q", "--laionet-update-baseline"], cwd=folder, capture_output=True, check=False)
        run = subprocess.run([*pytest, "--laionet-json", "laionet-report.json"], cwd=folder, text=True,
                             capture_output=True, check=False)
    print(run.stdout, end="")
    print(run.stderr, end="", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
