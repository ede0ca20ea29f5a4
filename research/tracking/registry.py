"""The model registry: register versions, promote a champion, load it for inference.

Rules
-----
- Only a run that ended ``FINISHED`` can register a model: a failed run registers nothing.
- A version gets the ``champion`` alias only when it beat the naive baseline out of sample
  on the primary metric (decided by the training cycle, recorded on the version as tags
  ``beats_naive``, ``primary_metric``, ``primary_value``, ``naive_value``). A version that does
  not beat it is registered for the record but never promoted; the previous champion, if any,
  keeps the alias.
- Models load only into the workbench's artifact store (downloads go to
  ``<artifact_root>/.registry-cache``), in the native ``.keras`` format, with safe mode on.
- Every version records, when registered, the sha256 of its ``.keras`` file and of the
  forecaster metadata (version tags ``keras_sha256`` and ``metadata_sha256``). Loading
  checks both before Keras reads a byte: a flipped bit or an edited file raises
  :class:`ModelIntegrityError` and nothing is loaded. (A version registered before these
  tags existed is checked by its weights hash only, after loading, with a warning.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from research.config import get_settings
from research.models.lstm import LSTMForecaster
from research.tracking.store import configure

__all__ = [
    "CHAMPION",
    "RegistryError",
    "ModelIntegrityError",
    "NoChampionError",
    "register_model",
    "promote",
    "champion_version",
    "latest_version",
    "load_version",
    "load_champion",
]

log = logging.getLogger(__name__)
CHAMPION = "champion"
FORECASTER_DIR = "forecaster"


class RegistryError(RuntimeError):
    """A registry operation was refused."""


class ModelIntegrityError(RegistryError):
    """A registered model's artifact does not match the hash recorded when it was registered."""


class NoChampionError(LookupError):
    """No version of a registered model holds the ``champion`` alias."""


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    store = configure()
    return MlflowClient(store.tracking_uri, registry_uri=store.tracking_uri)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _one(folder: Path, pattern: str, what: str) -> Path:
    files = sorted(Path(folder).rglob(pattern))
    if len(files) != 1:
        raise RegistryError(f"{what}: expected one {pattern} file, found {len(files)}")
    return files[0]


def _artifact_hashes(run_id: str, model_uri: str) -> dict[str, str]:
    """sha256 of the logged ``.keras`` file and of the forecaster metadata, read from the store."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(Path(tmp) / "model"))
        meta_dir = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=FORECASTER_DIR,
                                                       dst_path=str(Path(tmp) / "run"))
        return {"keras_sha256": _sha256(_one(model_dir, "*.keras", f"model {model_uri}")),
                "metadata_sha256": _sha256(_one(meta_dir, "*.json", f"run {run_id} {FORECASTER_DIR}/"))}


def register_model(run_id: str, *, name: str, model_uri: str, tags: dict[str, Any] | None = None) -> Any:
    """Register the model logged by a FINISHED run as a new version of ``name``.

    The version is created with the sha256 of its ``.keras`` file and of the forecaster
    metadata as tags (``keras_sha256``, ``metadata_sha256``), which loading verifies.

    Raises
    ------
    RegistryError
        The run did not finish successfully, or its model or metadata artifact is missing
        (nothing is registered).
    """
    import mlflow

    client = _client()
    status = client.get_run(run_id).info.status
    if status != "FINISHED":
        raise RegistryError(f"refusing to register a model from run {run_id}: its status is {status}, not FINISHED")
    hashes = _artifact_hashes(run_id, model_uri)
    mv = mlflow.register_model(model_uri, name, tags={**{k: str(v) for k, v in (tags or {}).items()}, **hashes})
    client.set_model_version_tag(name, mv.version, "run_id", run_id)
    return mv


def promote(name: str, version: str | int, *, beats_naive: bool) -> bool:
    """Give ``version`` the champion alias when it beat the naive baseline; return whether it did."""
    client = _client()
    client.set_model_version_tag(name, str(version), "beats_naive", str(bool(beats_naive)).lower())
    if not beats_naive:
        log.info("%s v%s did not beat the naive baseline; champion unchanged", name, version)
        return False
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return True


def champion_version(name: str) -> Any | None:
    """The version holding the champion alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def latest_version(name: str) -> Any | None:
    """The most recently registered version of ``name``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        versions = _client().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def _cache_dir(name: str, version: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return get_settings().artifact_root / ".registry-cache" / safe / str(version)


def load_version(name: str, version: str | int, *, fast_inference: bool = False) -> LSTMForecaster:
    """Load one registered version as an :class:`~research.models.lstm.LSTMForecaster`.

    The weights come from the registered model; the scaler, feature names and
    hyperparameters from the ``forecaster/`` artifacts of the run that logged it.
    ``fast_inference`` compiles it for one-window serving (XLA; see
    :meth:`~research.models.lstm.LSTMForecaster.compile_for_inference`).
    """
    import mlflow

    client = _client()
    mv = client.get_model_version(name, str(version))
    dst = _cache_dir(name, str(version))
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    meta_dir = mlflow.artifacts.download_artifacts(
        run_id=mv.run_id, artifact_path=FORECASTER_DIR, dst_path=str(dst / "run"))
    metas = sorted(Path(meta_dir).glob("*.json"))
    if not metas:
        raise RegistryError(f"{name} v{version}: run {mv.run_id} has no {FORECASTER_DIR}/*.json metadata")
    model_dir = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst / "model"))
    files = sorted(Path(model_dir).rglob("*.keras"))
    if len(files) != 1:
        raise RegistryError(f"{name} v{version}: expected one .keras file in the registered model, found {len(files)}")
    _verify(name, str(version), mv.tags or {}, {"keras_sha256": files[0], "metadata_sha256": metas[0]}, dst)
    keras_path = dst / "registered.keras"
    shutil.copyfile(files[0], keras_path)
    keras_path.with_suffix(".json").write_text(metas[0].read_text(encoding="utf-8"), encoding="utf-8")
    model = LSTMForecaster.load(keras_path, fast_inference=fast_inference)
    expected = json.loads(metas[0].read_text(encoding="utf-8")).get("weights_sha256")
    if expected and model.weights_sha256() != expected:
        raise ModelIntegrityError(f"{name} v{version}: registered weights do not match the run's recorded hash")
    model.registry = {"name": name, "version": str(version), "run_id": mv.run_id}
    return model


def _verify(name: str, version: str, tags: dict, files: dict[str, Path], cache: Path) -> None:
    """Compare downloaded artifacts with the hashes recorded at registration; refuse on mismatch."""
    if not any(key in tags for key in files):
        log.warning("%s v%s was registered without artifact hashes; only its weights hash is checked", name, version)
        return
    for key, path in files.items():
        recorded, actual = tags.get(key), _sha256(path)
        if recorded != actual:
            shutil.rmtree(cache, ignore_errors=True)
            raise ModelIntegrityError(
                f"{name} v{version}: {path.name} does not match the sha256 recorded when it was registered "
                f"({key} {str(recorded)[:12]}..., found {actual[:12]}...); the stored artifact is corrupted or "
                "was altered, so it is not loaded. Restore it from a backup or register a newly trained version."
            )


def load_champion(name: str, *, fast_inference: bool = False) -> LSTMForecaster:
    """Load the champion version of ``name`` for inference.

    Raises
    ------
    NoChampionError
        No version has beaten the naive baseline yet; the message names the latest version,
        which :func:`load_version` can still load explicitly.
    """
    mv = champion_version(name)
    if mv is None:
        latest = latest_version(name)
        hint = (f"; the latest version is {latest.version} (beats_naive="
                f"{latest.tags.get('beats_naive', '?')}), loadable with load_version") if latest else \
            "; no version is registered yet (train one first)"
        raise NoChampionError(f"{name} has no champion: no version beat the naive baseline out of sample{hint}")
    return load_version(name, mv.version, fast_inference=fast_inference)
