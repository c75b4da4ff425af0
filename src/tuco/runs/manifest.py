"""A run's manifest: what made its rows (the configuration and its fingerprint, versions, command line),
its status and timings. ``resume`` compares fingerprints and names what differs. Torch-free."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tuco.runs.store import manifest_path

# Version of the row schema (tuco.runs.schema) a run's rows follow; recorded in every manifest.
SCHEMA_VERSION = 2


def _git_sha() -> str | None:
    try:
        root = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    """Versions of the pieces a result depends on."""
    import importlib.metadata as md

    found: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("tuco", "torch", "transformers", "peft"):
        try:
            found[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            found[pkg] = None
    found["tuco_git_sha"] = _git_sha()
    return found


def fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines a run's rows."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def prompts_digest(items: Iterable[tuple[str, Sequence[int]]]) -> str:
    """A digest of (id, token ids) pairs: a resumed run must see the very same prompts."""
    h = hashlib.sha256()
    for pid, ids in items:
        h.update(json.dumps([pid, list(ids)]).encode("utf-8"))
    return h.hexdigest()[:16]


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The manifest of an output ({} when there is none or it cannot be read)."""
    p = manifest_path(out)
    try:
        data = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old before, new now`` for every top-level key whose value differs."""
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {json.dumps(old.get(k), default=str)} before, {json.dumps(new.get(k), default=str)} now"
        for k in keys
        if json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(new.get(k), sort_keys=True, default=str)
    ]
