"""Per-symbol trainings as tasks: one MLflow run per symbol, nested under the parent."""

from __future__ import annotations

import pytest

from research.experiments import TrainingConfig
from research.experiments.fanout import train_symbols

TINY = TrainingConfig.preset("tiny").replace(max_bars=300, n_folds=2, test_size=40, epochs=1, trade=False)


def test_symbols_train_on_a_client_each_in_its_own_nested_run():
    from mlflow.tracking import MlflowClient

    from research.compute import get_client
    from research.tracking.store import configure, ensure_experiment

    store = configure()
    tracking = MlflowClient(store.tracking_uri)
    parent = tracking.create_run(ensure_experiment("fanout", store), run_name="parent").info.run_id
    symbols = ["SYN0201", "SYN0202"]
    with get_client("local", n_workers=2, memory_limit="2GiB", dashboard_address=None, announce=False) as client:
        results = train_symbols(symbols, client=client, source="synthetic", config=TINY, experiment="fanout",
                                register=False, parent_run_id=parent)
    assert list(results) == symbols
    for sym, res in results.items():
        assert res.symbol == sym and res.model is None
        run = tracking.get_run(res.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert "lstm" in res.comparison.index
    assert len({r.run_id for r in results.values()}) == 2


def test_figures_do_not_travel_to_workers():
    with pytest.raises(ValueError, match="figures"):
        train_symbols(["SPX"], client=object(), figures=lambda p: {})
