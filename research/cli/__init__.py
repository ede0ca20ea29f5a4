"""The ``workbench`` command (also ``python -m research``).

Each command group lives in its own module of this package and is registered below.
"""

from __future__ import annotations

import os

import typer

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
    for module in ("backtest", "models", "pipeline", "dashboards", "alerts", "paper", "news"):
        try:
            mod = __import__(f"research.cli.{module}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"research.cli.{module}":
                raise
            continue
        mod.register(app)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks of errors (also WORKBENCH_DEBUG=1)."),
) -> None:
    """Quant research workbench: data, backtests, models, pipelines and dashboards."""
    from research.cli.errors import set_debug

    set_debug(debug)


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``workbench`` console script.

    User errors are printed as one line on stderr with a non-zero exit code (2 for input and
    usage errors); ``--debug`` or ``WORKBENCH_DEBUG=1`` shows the traceback (see
    :mod:`research.cli.errors`).
    """
    from research.cli.errors import report

    # Quiet TensorFlow's C++ logs and MLflow's telemetry here and in the kernels this starts.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        app(args=argv, prog_name="workbench")
    except SystemExit:
        raise
    except (Exception, KeyboardInterrupt) as exc:  # every command group's errors are reported here, once
        raise SystemExit(report(exc)) from None
