"""Registry rules: only finished runs register; champion only when the naive baseline is beaten."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from research.experiments.cycle import _log_model
from research.models.datasets import forward_target, make_windows
from research.models.lstm import LSTMForecaster
from research.tracking import registry
from research.tracking.runs import run


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2020-01-01", periods=300, freq="B", tz="UTC")
    close = pd.Series(100 * np.cumprod(1 + rng.normal(0, 0.01, 300)), index=idx)
    feats = pd.DataFrame(rng.normal(size=(300, 3)), index=idx, columns=["a", "b", "c"])
    ds = make_windows(feats, forward_target(close), lookback=20, horizon=1)
    model = LSTMForecaster(lookback=20, units=8, epochs=1, batch_size=64, seed=0).fit(ds)
    return model, ds, feats


def _logged_run(model, ds, tmp_path, *, fail: bool = False):
    info = None
    try:
        with run("registry-test", {"k": 1}) as r:
            info = _log_model(r, model, ds, tmp_path)
            if fail:
                raise RuntimeError("failed after logging the model")
    except RuntimeError:
        pass
    return r.run_id, info


def test_promotion_rules_and_loading(fitted, tmp_path):
    model, ds, feats = fitted
    name = "lstm-registry-test"
    run_id, info = _logged_run(model, ds, tmp_path)
    v1 = registry.register_model(run_id, name=name, model_uri=info.model_uri)
    assert registry.promote(name, v1.version, beats_naive=False) is False
    assert registry.champion_version(name) is None
    with pytest.raises(registry.NoChampionError, match="latest version is 1 \\(beats_naive=false\\)"):
        registry.load_champion(name)
    loaded = registry.load_version(name, v1.version)  # still loadable explicitly
    assert loaded.weights_sha256() == model.weights_sha256()

    run2, info2 = _logged_run(model, ds, tmp_path)
    v2 = registry.register_model(run2, name=name, model_uri=info2.model_uri)
    assert registry.promote(name, v2.version, beats_naive=True) is True
    run3, info3 = _logged_run(model, ds, tmp_path)
    v3 = registry.register_model(run3, name=name, model_uri=info3.model_uri)
    registry.promote(name, v3.version, beats_naive=False)
    assert str(registry.champion_version(name).version) == str(v2.version)  # a loser never takes the alias
    champ = registry.load_champion(name)
    assert champ.registry == {"name": name, "version": str(v2.version), "run_id": run2}
    np.testing.assert_allclose(champ.predict(feats).to_numpy(), model.predict(feats).to_numpy(), rtol=1e-6)
    assert str(registry.latest_version(name).version) == str(v3.version)
    cache = registry._cache_dir(name, v2.version)
    assert cache.is_relative_to(registry.get_settings().artifact_root)


def test_failed_runs_register_nothing(fitted, tmp_path):
    model, ds, _ = fitted
    run_id, info = _logged_run(model, ds, tmp_path, fail=True)
    assert MlflowClient().get_run(run_id).info.status == "FAILED"
    with pytest.raises(registry.RegistryError, match="status is FAILED, not FINISHED"):
        registry.register_model(run_id, name="lstm-never", model_uri=info.model_uri)
    assert MlflowClient().search_model_versions("name = 'lstm-never'") == []
    assert mlflow.active_run() is None
