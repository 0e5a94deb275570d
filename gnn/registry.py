"""The model registry: one folder per model version.

A version folder holds everything needed to score with the model and to know where it came
from::

    models/<version>/
        model.pt          the weights (a state dict; loaded with weights_only=True)
        manifest.json     version, created_at (UTC), model class and hyperparameters, the
                          feature spec (names, in order), the training-data fingerprint and seed,
                          the split, class weighting, thresholds and metrics
        baselines/        the tabular baseline and unsupervised detectors, when trained
    models/LATEST         the newest version's name

``version`` is ``fraudsage-<UTC time>-<data fingerprint prefix>``. A folder is written under a
temporary name and renamed into place, so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from gnn.features import ENTITY_FEATURES, EUR_RATES, RELATIONS, TXN_FEATURES
from gnn.model import FraudSAGE
from ingest.errors import RingfenceError

FEATURE_SPEC_VERSION = 1


class RegistryError(RingfenceError, ValueError):
    """A model folder is missing or does not match this code."""


def feature_spec() -> dict[str, Any]:
    """What the model's inputs are; stored with it and checked on load."""
    return {
        "version": FEATURE_SPEC_VERSION,
        "transaction": list(TXN_FEATURES),
        "entity": list(ENTITY_FEATURES),
        "relations": [list(r) for r in RELATIONS],
        "eur_rates": dict(EUR_RATES),
    }


def fingerprint(folder: Path) -> str:
    """A sha256 over every file's relative path and bytes under ``folder`` (sorted)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def new_version(fp: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """A version name for a model trained now on data with fingerprint ``fp``."""
    return f"fraudsage-{now().strftime('%Y%m%dT%H%M%SZ')}-{fp[:8]}"


def save(
    out: Path,
    model: FraudSAGE,
    manifest: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a version folder under ``out`` and point ``LATEST`` at it; returns the folder."""
    version = manifest["version"]
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{version}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(model.state_dict(), tmp / "model.pt")
    body = dict(manifest)
    body["model"] = {"class": "FraudSAGE", "hidden": model.hidden, "dropout": model.dropout}
    body["features"] = feature_spec()
    (tmp / "manifest.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    if extra is not None:
        extra(tmp)
    final = out / version
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest = out / ".LATEST.tmp"
    latest.write_text(version + "\n")
    os.replace(latest, out / "LATEST")
    return final


def resolve(path: str | Path) -> Path:
    """A version folder, from itself or from a registry folder (its ``LATEST``)."""
    p = Path(path)
    if (p / "manifest.json").is_file():
        return p
    if (p / "LATEST").is_file():
        version = (p / "LATEST").read_text().strip()
        if (p / version / "manifest.json").is_file():
            return p / version
    raise RegistryError(f"model: {p} is neither a model version folder nor a registry")


def load(path: str | Path) -> tuple[FraudSAGE, dict[str, Any]]:
    """The model and its manifest; refuses a model whose feature spec differs from this code's."""
    folder = resolve(path)
    manifest = json.loads((folder / "manifest.json").read_text())
    spec = manifest.get("features", {})
    if spec.get("transaction") != list(TXN_FEATURES) or spec.get("entity") != list(ENTITY_FEATURES):
        raise RegistryError(
            f"model: {folder} was trained on another feature spec "
            f"(version {spec.get('version')}); retrain it with this release"
        )
    cfg = manifest["model"]
    model = FraudSAGE(hidden=cfg["hidden"], dropout=cfg["dropout"])
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    return model, manifest
