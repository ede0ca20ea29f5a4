"""The one-call training cycle against a temporary tracking store."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from research.experiments import TrainingConfig, train_and_evaluate
from research.experiments.training_config import BASELINES
from research.models.base import TrainingError
from research.tracking import load_champion
from research.viz.models import evaluation_figures

TINY = TrainingConfig.preset("tiny").replace(max_bars=500, n_folds=2, test_size=80, epochs=6, patience=2, lr=5e-3, trade=False)


def test_cycle_logs_registers_and_promotes_a_model_that_beats_naive(planted):
    res = train_and_evaluate("SYN0101", source="synthetic", config=TINY, figures=evaluation_figures)
    assert list(res.comparison.index) == ["lstm", *BASELINES]
    assert list(res.summary.index) == ["lstm", *BASELINES]
    # the planted feature is learnable: the LSTM must beat the random walk out of sample
    assert res.summary.at["lstm", "rmse"] < res.summary.at["naive", "rmse"]
    assert res.beats_naive and res.champion and res.model_version == "1"
    assert set(res.predictions["fold"]) == {0, 1} and len(res.predictions) == 80 * 2 * (1 + len(BASELINES))

    client = MlflowClient()
    run = client.get_run(res.run_id)
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    assert {"oos/lstm/rmse", "oos/naive/rmse", "oos/ridge/directional_accuracy", "fold/lstm/s0/rmse"} <= set(m)
    assert len(client.get_metric_history(res.run_id, "fold/lstm/s0/rmse")) == 2  # per fold
    assert len(client.get_metric_history(res.run_id, "epoch/f0/s0/loss")) >= 1  # per epoch
    assert run.data.tags["beats_naive"] == "true" and run.data.tags["data.source"] == "synthetic"
    arts = {f.path for d in ("", "evaluation", "figures", "forecaster") for f in client.list_artifacts(res.run_id, d or None)}
    assert {"config.yaml", "evaluation/predictions.parquet", "evaluation/comparison.md",
            "figures/predicted_vs_actual.html", "figures/error_distribution.html",
            "figures/rolling_directional_accuracy.html", "forecaster/lstm.keras", "forecaster/lstm.json"} <= arts

    champ = load_champion(res.model_name)
    assert champ.weights_sha256() == res.model.weights_sha256()
    ev = res.model_eval()
    assert list(ev.columns) == ["symbol", "model", "rmse", "mae", "directional_accuracy", "ic", "rank_ic",
                                "beats_naive", "champion", "mlflow_run_id"]
    assert ev.loc[ev["model"] == "lstm", "champion"].item() and not ev.loc[ev["model"] == "naive", "beats_naive"].item()
    assert "lstm" in str(res) and res.ui_path().endswith(res.run_id)


def test_a_failed_training_ends_the_run_failed_and_registers_nothing():
    cfg = TINY.replace(lr=1e30, epochs=2)
    with pytest.raises(TrainingError, match="NaN"):
        train_and_evaluate("SYN0102", source="synthetic", config=cfg)
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("lstm-forecast").experiment_id],
                              filter_string="tags.symbol = 'SYN0102'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "TrainingError" in runs[0].data.tags["error"]
    assert client.search_model_versions("name = 'lstm-SYN0102'") == []  # 0 models from failed runs


def test_config_presets_yaml_and_refusals(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("preset: tiny\nepochs: 3\nseeds: [0, 1]\n")
    cfg = TrainingConfig.from_yaml(path)
    assert (cfg.epochs, cfg.seeds, cfg.units) == (3, (0, 1), 8)
    with pytest.raises(ValueError, match="unknown training settings \\['unit'\\]"):
        TrainingConfig().replace(unit=4)
    with pytest.raises(ValueError, match="embargo \\(1\\) must be at least the horizon \\(5\\)"):
        TrainingConfig(horizon=5, embargo=1)
    with pytest.raises(ValueError, match="must include 'naive'"):
        TrainingConfig(baselines=("ridge",))
    with pytest.raises(ValueError, match="primary_metric"):
        TrainingConfig(primary_metric="ic")
    assert TrainingConfig.preset("pipeline") == TrainingConfig()
    assert np.isclose(TrainingConfig().to_dict()["lr"], 1e-3)
