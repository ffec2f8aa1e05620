"""The README's plugin example is real output: the script that regenerates it still produces it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _failure_block(text: str) -> list[str]:
    """The lines that do not depend on the machine (paths, versions, timings)."""
    start = text.index("LAIONet robustness check failed")
    lines = text[start:text.index("LAIONet report:", start)].splitlines()
    return [re.sub(r"\s+", " ", line).strip() for line in lines if line.strip()]


def test_readme_plugin_output_is_what_the_script_prints():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_plugin_example.py")], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "1 failed, 3 passed" in run.stdout
    readme = (ROOT / "README.md").read_text("utf-8")
    assert _failure_block(run.stdout) == _failure_block(readme)
