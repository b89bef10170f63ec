"""README.md stays true: its Python snippets run, its settings table lists every setting, and
its test command is the one CI runs."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_snippets_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)              # snippets write files (checkpoints, .rec, ...)
    namespace: dict = {}
    blocks = python_blocks()
    assert len(blocks) >= 8
    for i, block in enumerate(blocks):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"README python block {i + 1} failed:\n{block}") from err


def test_every_setting_is_listed():
    from hybridnet import config
    missing = [name for name in config.SETTINGS if f"`{name}`" not in README]
    assert not missing, f"README's configuration table lacks {missing}"


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && python -m pytest"
    assert f"```bash\n{command}\n```" in README
    assert ci.rstrip().splitlines()[-1] == command
