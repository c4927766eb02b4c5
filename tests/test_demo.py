"""`make demo` keeps working: the demo runs to the end and shows real history from a real kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parent.parent / "examples" / "demo.py"


def test_demo_runs_the_notebook_and_shows_its_history(tmp_path):
    done = subprocess.run(
        [sys.executable, str(DEMO), "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert (tmp_path / "weather.ipynb").is_file()
    assert (tmp_path / ".nbstate" / "nbstate.sqlite").is_file()
    assert "HEAD -> main" in out
    assert "sample_ids: TypeError: cannot pickle 'generator' object" in out
    assert "after:  signal[0] = 1.30" in out  # undo brought back the value the in-place edit zeroed
    assert "replayed sample_ids" in out
    assert "{'Lima': 16.0, 'Oslo': 18.7, 'Pune': 21.0} sample-0" in out
    assert "Traceback" not in out + done.stderr
