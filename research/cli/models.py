"""``workbench train``, ``workbench predict`` and ``workbench mlflow``."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

SourceOpt = Annotated[str, typer.Option("--source", "-s", help="sample, synthetic, files, yahoo, coingecko or ccxt (ccxt:<exchange>).")]
IntervalOpt = Annotated[str, typer.Option("--interval", "-i", help="Bar length: 1d, 1h, 1wk or 1mo.")]


def train(
    symbol: Annotated[str, typer.Option("--symbol", help="Symbol to train on, e.g. SPX.")],
    source: SourceOpt = "sample",
    interval: IntervalOpt = "1d",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of training settings (may set `preset:`).", exists=True, dir_okay=False)] = None,
    preset: Annotated[str, typer.Option(help="Starting preset: tiny, pipeline or research.")] = "pipeline",
    epochs: Annotated[int | None, typer.Option(help="Override: LSTM epochs.")] = None,
    units: Annotated[int | None, typer.Option(help="Override: LSTM units per layer.")] = None,
    lookback: Annotated[int | None, typer.Option(help="Override: window length in bars.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Override: comma-separated seeds, e.g. 0,1,2.")] = None,
    folds: Annotated[int | None, typer.Option(help="Override: walk-forward folds.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "lstm-forecast",
    register: Annotated[bool, typer.Option(help="Register the model (champion only if it beats naive).")] = True,
    trade: Annotated[bool, typer.Option(help="Backtest trading the out-of-sample forecasts.")] = True,
) -> None:
    """Train the LSTM on SYMBOL, compare it with the baselines out of sample, log it to MLflow.

    Walk-forward folds with an embargo; the model is registered and becomes `champion` only
    when it beats the naive baseline on the primary metric.
    """
    from research.experiments import TrainingConfig, train_and_evaluate
    from research.viz.models import evaluation_figures

    cfg = TrainingConfig.from_yaml(config, base=TrainingConfig.preset(preset)) if config else TrainingConfig.preset(preset)
    overrides = {k: v for k, v in {"epochs": epochs, "units": units, "lookback": lookback, "n_folds": folds}.items() if v is not None}
    if seeds:
        overrides["seeds"] = tuple(int(s) for s in seeds.split(","))
    overrides["trade"] = trade and cfg.trade
    cfg = cfg.replace(**overrides)
    result = train_and_evaluate(symbol, source=source, config=cfg, interval=interval, experiment=experiment,
                                register=register, figures=lambda p: evaluation_figures(p, target=cfg.target),
                                progress=True)
    typer.echo(str(result))
    typer.echo(f"took {result.seconds:.1f} s; open `workbench mlflow` then http://127.0.0.1:5000{result.ui_path()}")


def predict(
    symbol: Annotated[str, typer.Option("--symbol", help="Symbol to forecast, e.g. SPX.")],
    source: SourceOpt = "sample",
    interval: IntervalOpt = "1d",
    model_name: Annotated[str | None, typer.Option(help="Registered model; default lstm-<symbol>.")] = None,
    version: Annotated[str | None, typer.Option(help="Use this version instead of the champion.")] = None,
) -> None:
    """Forecast SYMBOL's next horizon with the champion model (or --version) on the latest bars."""
    from research.data import load_prices
    from research.experiments import model_name_for
    from research.features.sets import feature_set
    from research.tracking import NoChampionError, load_champion, load_version

    name = model_name or model_name_for(symbol)
    try:
        model = load_version(name, version) if version else load_champion(name)
    except NoChampionError as exc:
        typer.echo(f"error: {exc} (here: --version N)", err=True)
        raise typer.Exit(1) from exc
    ohlcv = load_prices(symbol, interval=interval, source=source)
    feats = feature_set(ohlcv, _set_name(model))
    pred = model.predict(feats.iloc[-(model.lookback + 200):], close=ohlcv["close"].iloc[-(model.lookback + 200):])
    at, value = pred.index[-1], float(pred.iloc[-1])
    what = f"{value:+.4%} return" if model.target == "return" else f"P(up) = {value:.3f}"
    reg = model.registry or {}
    typer.echo(f"{symbol}: forecast made at {at:%Y-%m-%d} for the next {model.horizon} bar(s): {what} "
               f"({reg.get('name', name)} v{reg.get('version', '?')}{'' if version else ', champion'}; "
               f"trained on {model.fitted_range[0][:10]} .. {model.fitted_range[1][:10]})")


def _set_name(model: object) -> str:
    from research.features.sets import FEATURE_SETS

    for name, cols in FEATURE_SETS.items():
        if tuple(cols) == tuple(model.feature_names):
            return name
    raise typer.BadParameter(f"no feature set has the model's features {list(model.feature_names)}")


def _ui_command(uri: str, artifact_root: Path, host: str, port: int) -> list[str]:
    # one worker: a local UI for one user; each extra worker is a full MLflow import to start and stop
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--default-artifact-root", artifact_root.resolve().as_uri(), "--host", host, "--port", str(port),
            "--workers", "1"]


def server_command(backend_store_uri: str, artifacts_destination: str, host: str, port: int, *,
                   workers: int = 2) -> list[str]:
    """``mlflow server`` over ``backend_store_uri`` (e.g. PostgreSQL) with proxied artifacts.

    Clients reach runs, the registry and artifacts through the server alone
    (``MLFLOW_TRACKING_URI=http://host:port``): artifacts are uploaded to it and stored under
    ``artifacts_destination`` (a folder, or ``s3://...`` and the like).
    """
    dest = artifacts_destination if "://" in artifacts_destination else Path(artifacts_destination).resolve().as_uri()
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", _postgres_driver(backend_store_uri),
            "--serve-artifacts", "--artifacts-destination", dest, "--host", host, "--port", str(port),
            "--workers", str(workers)]


def _postgres_driver(uri: str) -> str:
    """``postgresql://`` names SQLAlchemy's default driver (psycopg 3); use psycopg2 unless it is installed."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix) and importlib.util.find_spec("psycopg") is None:
            return "postgresql+psycopg2://" + uri[len(prefix):]
    return uri


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``.

    Reads /proc where it exists (an orphaned zombie nobody reaps still answers ``killpg(pgid,
    0)``); elsewhere a group that answers the signal counts as one member.
    """
    proc_dir = Path("/proc")
    if not (proc_dir / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    out = []
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            out.append(int(entry.name))
    return out


def _wait_group(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _stop_group(proc: subprocess.Popen, *, grace: float = 5.0) -> None:
    """Stop the UI's whole process group (the server and its workers) within about ``grace`` s.

    SIGTERM to the group, then SIGKILL to whatever is left of it after ``grace`` seconds;
    further Ctrl-C and SIGTERM are ignored meanwhile so a second one cannot leave orphans.
    """
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not _wait_group(proc.pid, grace):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_group(proc.pid, grace)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sigterm_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def mlflow_ui(
    port: Annotated[int, typer.Option(help="Port of the UI.")] = 5000,
    host: Annotated[str, typer.Option(help="Loopback address to bind (the UI has no authentication).")] = "127.0.0.1",
    backend_store_uri: Annotated[str | None, typer.Option(
        help="Run a team tracking server over this store instead, e.g. postgresql://user@db:5432/mlflow.")] = None,
    artifacts_destination: Annotated[str, typer.Option(
        help="With --backend-store-uri: where the server keeps the artifacts it proxies (folder or s3://...).")] = "mlruns/artifacts",
    allow_network: Annotated[bool, typer.Option(
        help="Bind a non-loopback --host (put authentication in front: MLflow's server has none).")] = False,
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the workbench's tracking store; Ctrl-C stops it.

    With --backend-store-uri, start a team tracking server instead (proxied artifacts); point
    clients at it with MLFLOW_TRACKING_URI=http://HOST:PORT.
    """
    from research.tracking.store import configure, sqlite_path

    try:
        if not (allow_network or ipaddress.ip_address(host).is_loopback):
            raise ValueError
    except ValueError:
        typer.echo(f"error: refusing to bind {host!r}: the MLflow UI has no authentication; use a loopback address "
                   "(or --allow-network behind an authenticating proxy)", err=True)
        raise typer.Exit(2) from None
    if backend_store_uri:
        command = server_command(backend_store_uri, artifacts_destination, host, port)
        dest = command[command.index("--artifacts-destination") + 1]
        label, detail = "MLflow tracking server", f"store {_masked(backend_store_uri)}, artifacts {dest}"
    else:
        store = configure()
        if sqlite_path(store.tracking_uri) is None:
            typer.echo(f"The tracking URI is a server already: {store.tracking_uri}")
            raise typer.Exit(0)
        command = _ui_command(store.tracking_uri, store.artifact_root, host, port)
        label, detail = "MLflow UI", f"store {store.tracking_uri}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    # Ctrl-C stops it even when the command inherited SIGINT ignored (started in the background by a
    # script without job control: Python then keeps SIGINT ignored), and a service stop ends it alike
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                signal.SIGTERM: signal.signal(signal.SIGTERM, _sigterm_as_interrupt)}
    # its own session: Ctrl-C reaches only this command, which stops the server's whole group
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    url = f"http://{host}:{port}"
    try:
        if _wait_healthy(url, proc, timeout=120):
            typer.echo(f"{label} at {url} ({detail}); Ctrl-C to stop")
            if backend_store_uri:
                typer.echo(f"clients: export MLFLOW_TRACKING_URI={url}")
        code = proc.wait()
        if code:
            typer.echo(f"error: the MLflow UI exited with status {code}", err=True)
            raise typer.Exit(code)
    except KeyboardInterrupt:
        typer.echo("stopping the MLflow UI")
    finally:
        _stop_group(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _masked(uri: str) -> str:
    """A database URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict`` and ``mlflow`` to the root ``workbench`` command."""
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("mlflow")(mlflow_ui)
