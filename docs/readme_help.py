"""Regenerate the README's `tuco ... --help` blocks from the parser (run by `make readme-help`;
tests/test_cli.py fails when they drift). Each block is written as

    `tuco score --help`:

    ```
    ...output at COLUMNS=100...
    ```
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PATTERN = re.compile(r"(`(tuco [a-z -]+) --help`:\n\n```\n)(.*?)(```)", flags=re.S)


def help_text(command: str) -> str:
    """What ``command --help`` prints at 100 columns."""
    env = {**os.environ, "COLUMNS": "100", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "tuco", *command.split()[1:], "--help"], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout.strip() + "\n"


def main(path: str) -> None:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    new = PATTERN.sub(lambda m: m.group(1) + help_text(m.group(2)) + m.group(4), text)
    if new != text:
        p.write_text(new, encoding="utf-8")
        print(f"updated the --help blocks of {path}")
    else:
        print(f"{path}: --help blocks up to date")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "README.md")
