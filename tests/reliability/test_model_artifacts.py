"""Models: a registered model whose stored artifact was corrupted is refused by its hash.

A tiny LSTM is logged and registered the way the training cycle does it (the ``.keras`` file
and the forecaster metadata under ``forecaster/``, the Keras flavour under ``model``); then
single bytes of the stored ``.keras`` file and of the metadata are flipped in the artifact
store, one at a time, and every load must raise ``ModelIntegrityError`` (never return a model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from research.models.datasets import forward_target, make_windows
from research.models.lstm import LSTMForecaster
from research.tracking import registry
from research.tracking.runs import run

pytestmark = pytest.mark.slow

FLIPS = 12  # positions in the .keras file, spread over its length


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    import mlflow

    rng = np.random.default_rng(3)
    idx = pd.date_range("2020-01-01", periods=160, freq="B", tz="UTC")
    close = pd.Series(100 * np.cumprod(1 + rng.normal(0, 0.01, 160)), index=idx)
    feats = pd.DataFrame(rng.normal(size=(160, 2)), index=idx, columns=["a", "b"])
    ds = make_windows(feats, forward_target(close), lookback=10, horizon=1)
    model = LSTMForecaster(lookback=10, units=4, epochs=1, batch_size=64, seed=0).fit(ds)
    tmp = tmp_path_factory.mktemp("model")
    with run("reliability-models", {"units": 4}) as r:
        path = model.save(tmp / "lstm.keras")
        r.log_artifacts(path.parent, registry.FORECASTER_DIR)
        info = mlflow.keras.log_model(model.model, name="model", pip_requirements=["keras"])
    name = "lstm-reliability-bitflip"
    mv = registry.register_model(r.run_id, name=name, model_uri=info.model_uri)
    return name, str(mv.version), r.run_id, model


def _stored(run_id: str, version_source: str, pattern: str) -> Path:
    """The file in the artifact store itself (not a download)."""
    client = MlflowClient()
    roots = [client.get_run(run_id).info.artifact_uri]
    if version_source.startswith("models:/"):
        roots.append(client.get_logged_model(version_source.removeprefix("models:/")).artifact_location)
    for root in roots:
        hits = sorted(Path(root.removeprefix("file://")).rglob(pattern))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"no {pattern} under {roots}")


def _flip(path: Path, offset: int, bit: int = 0) -> bytes:
    data = path.read_bytes()
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    path.write_bytes(bytes(changed))
    return data


def test_registration_records_artifact_hashes(registered, case):
    name, version, _, _ = registered
    tags = MlflowClient().get_model_version(name, version).tags
    ok = len(tags.get("keras_sha256", "")) == 64 and len(tags.get("metadata_sha256", "")) == 64
    case("models", "registration records sha256 of .keras and metadata", "both tags", sorted(
        k for k in tags if k.endswith("_sha256")), ok)


def test_bit_flips_in_registered_artifacts_are_refused(registered, case):
    name, version, run_id, model = registered
    source = MlflowClient().get_model_version(name, version).source
    keras_file = _stored(run_id, source, "model.keras")  # the registered Keras flavour's file
    assert "forecaster" not in keras_file.parts
    meta_file = _stored(run_id, source, "lstm.json")
    size = keras_file.stat().st_size
    offsets = [int(x) for x in np.linspace(0, size - 1, FLIPS)]
    refused, loaded, other = 0, 0, []
    for k, offset in enumerate(offsets):
        original = _flip(keras_file, offset, bit=k % 8)
        try:
            registry.load_version(name, version)
            loaded += 1
        except registry.ModelIntegrityError:
            refused += 1
        except Exception as exc:  # any other error is not the typed refusal
            other.append(f"{offset}: {type(exc).__name__}")
        finally:
            keras_file.write_bytes(original)
    case("models", f"bit flips in the registered .keras file refused by hash ({FLIPS} offsets)",
         f"{FLIPS}/{FLIPS} ModelIntegrityError, 0 loaded", f"{refused}/{FLIPS} refused, {loaded} loaded, other {other}",
         refused == FLIPS and loaded == 0)

    original = _flip(meta_file, meta_file.stat().st_size // 2, bit=1)
    try:
        with pytest.raises(registry.ModelIntegrityError, match="does not match the sha256 recorded"):
            registry.load_version(name, version)
        meta_refused = True
    finally:
        meta_file.write_bytes(original)
    case("models", "a flipped byte in the forecaster metadata is refused", "ModelIntegrityError",
         "ModelIntegrityError" if meta_refused else "loaded", meta_refused)

    clean = registry.load_version(name, version)  # the restored artifacts load again
    case("models", "restored artifacts load with the same weights", model.weights_sha256()[:12],
         clean.weights_sha256()[:12], clean.weights_sha256() == model.weights_sha256())


def test_a_version_registered_without_hashes_loads_with_a_warning(registered, caplog):
    name, version, _, model = registered
    client = MlflowClient()
    tags = client.get_model_version(name, version).tags
    try:
        for key in ("keras_sha256", "metadata_sha256"):
            client.delete_model_version_tag(name, version, key)
        with caplog.at_level("WARNING", logger="research.tracking.registry"):
            legacy = registry.load_version(name, version)
        assert legacy.weights_sha256() == model.weights_sha256()
        assert "registered without artifact hashes" in caplog.text
    finally:
        for key in ("keras_sha256", "metadata_sha256"):
            client.set_model_version_tag(name, version, key, tags[key])
