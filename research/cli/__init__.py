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
    for module in ("backtest", "models", "pipeline", "dashboards"):
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
    """Run the main job: ingest and validate the sample universe, then summarise it."""
    from research.data import ingest_many, get_source
    from research.data.summary import default_universe, print_ingest_summary

    src = get_source("sample")
    symbols, interval = default_universe(src, "1d")
    results = ingest_many(symbols, interval=interval, source=src, progress=True)
    results.update(ingest_many(["BTC-USD"], interval="1mo", source=src))
    print_ingest_summary(results)


def main() -> None:
    """Entry point of the ``workbench`` console script."""
    app()
