"""Every script in example/ runs as a user would run it (quick settings) and learns.

Each runs in its own process, from the repository root, exactly as the README shows, and the
test reads the accuracy the script prints.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (script, quick arguments, printed accuracy pattern, accuracy it must reach)
EXAMPLES = [
    ("mlp_autograd.py", ["--epochs", "10"], r"final test accuracy: ([0-9.]+)", 0.95),
    ("imperative_and_symbolic.py", ["--epochs", "5"], r"test accuracy ([0-9.]+)", 0.9),
    ("custom_op.py", [], r"toy test accuracy: ([0-9.]+)", 0.9),
    ("lenet.py", ["--epochs", "3"], r"lenet test accuracy: ([0-9.]+)", 0.9),
    # the accuracy counts only after the reloaded checkpoint predicted the same
    ("feedforward.py", ["--epochs", "5"],
     r"loaded model predicts the same: True\nfeedforward test accuracy: ([0-9.]+)", 0.95),
    # ... and only when two devices trained exactly like one
    ("multi_device.py", ["--epochs", "3", "--work-load", "1", "3"],
     r"two devices equal one device: True\none device test accuracy: [0-9.]+\n"
     r"two devices test accuracy: ([0-9.]+)", 0.95),
]


def run_example(script: str, args: list, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "example" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.parametrize("script,args,pattern,target", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_trains(script, args, pattern, target):
    out = run_example(script, args)
    found = re.findall(pattern, out)
    assert found, f"{script} printed no accuracy:\n{out[-2000:]}"
    assert float(found[-1]) >= target, out[-2000:]


def test_imperative_and_symbolic_agree():
    out = run_example("imperative_and_symbolic.py", ["--epochs", "2"])
    assert "symbolic and eager predictions agree: True" in out
    assert "replayed logits match: True" in out
