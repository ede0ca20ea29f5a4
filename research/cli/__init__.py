"""The ``workbench`` command (also ``python -m research``).

Each command lives in a module of this package with a ``register(app)`` function that adds it
to a Typer app. The root command knows the commands by name and one-line help only
(:data:`COMMANDS`) and imports a command's module when that command runs or shows its own
help, so ``workbench --help`` and a refused argument start at once: importing this package
loads no plotting, widget, TensorFlow, MLflow or pandas module.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # Typer vendors its own copy of click: these are for the annotations only
    import click

__all__ = ["COMMANDS", "LazyGroup", "app", "main", "load_command"]

#: Command name -> (module that registers it, its one-line help as ``workbench --help`` shows it).
#: ``tests/cli/test_cli.py`` holds the table against what the modules register.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("research.cli.data", "Fetch, list, show and validate market data in the store."),
    "backtest": ("research.cli.backtest", "Backtest STRATEGY on stored data and print its risk summary."),
    "sweep": ("research.cli.backtest", "Sweep STRATEGY (default ma_crossover) over a parameter grid; write the table "
                                       "and heatmaps to --out."),
    "walk-forward": ("research.cli.walkforward", "Walk FAMILY forward: in each fold sweep --grid on the training "
                                                 "window, trade the best set on the test window."),
    "train": ("research.cli.models", "Train the LSTM on SYMBOL, compare it with the baselines out of sample, log it "
                                     "to MLflow."),
    "predict": ("research.cli.models", "Forecast SYMBOL's next horizon with the champion model (or --version) on the "
                                       "latest bars."),
    "mlflow": ("research.cli.models", "Start the MLflow UI on 127.0.0.1 over the workbench's tracking store; Ctrl-C "
                                      "stops it."),
    "pipeline": ("research.cli.pipeline", "Run parameterised notebook pipelines (pipelines/*.yaml) and read their "
                                          "run log."),
    "dashboards": ("research.cli.dashboards", "Serve the dashboards (market, predictions, backtests, risk, pipeline "
                                              "health, paper trading) with Voila."),
    "alerts": ("research.cli.alerts", "Alerts: deliver what is pending, list the outbox, retry failed deliveries, "
                                      "test a channel (see alerts.example.yaml and docs/alerts.md)."),
    "paper": ("research.cli.paper", "Paper trading: accounts that follow a strategy bar by bar in the ledger, replay "
                                    "through history, and a monitor that reconciles each account with its backtest."),
    "news": ("research.cli.news", "Fetch, list and show news headlines with their sentiment (see "
                                  "news.example.yaml)."),
    "config": ("research.cli.settings", "Print every setting's effective value and where it came from (secrets "
                                        "masked)."),
}


def load_command(name: str) -> click.Command:
    """The click command ``name`` of :data:`COMMANDS`, built from its module's ``register``."""
    module = importlib.import_module(COMMANDS[name][0])
    holder = typer.Typer()
    module.register(holder)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """A Typer group whose commands of :data:`COMMANDS` are imported when they are used.

    Listing the commands (``workbench --help``) shows the static one-line help and imports
    nothing; resolving a command to run it (or to show its own ``--help``) imports its module.
    """

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command: the lazy ones in table order, then those defined here."""
        return [*COMMANDS, *(n for n in self.commands if n not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``: a help-only stand-in while listing, else the real one (loaded once)."""
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            if self._listing:
                return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1], short_help=COMMANDS[cmd_name][1])
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The root help from :data:`COMMANDS`, without importing any command's module."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """As click does, suggesting close names from every command (loaded or not)."""
        try:
            return super().resolve_command(ctx, args)
        except typer.BadParameter.__mro__[1] as exc:  # click's UsageError (Typer vendors click)
            import difflib

            if args and "Did you mean" not in exc.message:
                close = difflib.get_close_matches(args[0], self.list_commands(ctx))
                if close:
                    exc.message = f"{exc.message.rstrip('.')}. Did you mean {', '.join(map(repr, close))}?"
            raise


app = typer.Typer(
    name="workbench",
    cls=LazyGroup,
    help="Quant research workbench: data, backtests, models, pipelines and dashboards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks of errors (also WORKBENCH_DEBUG=1)."),
) -> None:
    """Quant research workbench: data, backtests, models, pipelines and dashboards."""
    from research.cli.errors import set_debug

    set_debug(debug)


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

    Every error, a refused argument included, is printed as one line on stderr with a non-zero
    exit code (2 for input and usage errors); ``--debug`` or ``WORKBENCH_DEBUG=1`` shows the
    traceback (see :mod:`research.cli.errors`).
    """
    # Quiet TensorFlow's C++ logs and MLflow's telemetry here and in the kernels this starts.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        code = app(args=argv, prog_name="workbench", standalone_mode=False)
    except SystemExit:
        raise
    except (Exception, KeyboardInterrupt) as exc:  # every command's errors are reported here, once
        from research.cli.errors import report_error

        raise SystemExit(report_error(exc)) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
