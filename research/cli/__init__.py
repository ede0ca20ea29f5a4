"""The ``workbench`` command (also ``python -m research``).

Each command group lives in its own module of this package and is registered below.
"""

from __future__ import annotations

import os

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

app = typer.Typer(
    name="workbench",
    help="Quant research workbench: data, backtests, models, pipelines and dashboards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from research.cli import data as data_cli

    app.add_typer(data_cli.app, name="data")
    for module in ("backtest", "models", "pipeline", "dashboards", "alerts"):
        try:
            mod = __import__(f"research.cli.{module}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"research.cli.{module}":
                raise
            continue
        mod.register(app)


_register()


@app.command()
def run() -> None:
    """Run the daily pipeline on the bundled sample data (offline) and say where everything is.

    Ingests and validates the sample universe, builds features, trains the models (or forecasts
    with the champions), backtests, computes risk, writes today's signals and alerts and
    publishes the run; then prints where the executed notebooks, MLflow runs and signals are and
    how to open the dashboards. Same as `workbench pipeline run pipelines/daily.yaml`.
    """
    from research.cli.pipeline import run_daily

    run_daily()


def main() -> None:
    """Entry point of the ``workbench`` console script."""
    app()
