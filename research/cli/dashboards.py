"""``workbench dashboards``: serve the Voila dashboards to a browser."""

from __future__ import annotations

from typing import Annotated

import typer


def dashboards(
    port: Annotated[int | None, typer.Option(help="TCP port to listen on (default 8866).")] = None,
    ip: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs a token.")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the dashboards in a browser.")] = False,
    token: Annotated[str | None, typer.Option(
        help="Token viewers must present (default: WORKBENCH_DASHBOARDS_TOKEN from the environment or .env, "
             "which is preferred).")] = None,
    pool_size: Annotated[int | None, typer.Option(min=0, help="Pre-started kernels per dashboard (default from dashboards/voila.json; 0 disables).")] = None,
    cull_idle_timeout: Annotated[int | None, typer.Option(min=0, help="Seconds before an idle viewer kernel is shut down (default from dashboards/voila.json).")] = None,
    pipeline: Annotated[str, typer.Option(help="Pipeline whose published runs the dashboards show.")] = "daily",
    base_url: Annotated[str, typer.Option(help="URL prefix when a proxy serves them under a sub-path, e.g. /dashboards/.")] = "/",
    allowed_host: Annotated[list[str] | None, typer.Option(help="Host name requests may name besides loopback (a proxy's public name); repeatable.")] = None,
    max_viewers: Annotated[int | None, typer.Option(min=0, help="Viewer kernels live at once before new viewers get a 'busy' page (default 8; 0: no cap).")] = None,
) -> None:
    """Serve the dashboards (market, predictions, backtests, risk, pipeline health, paper trading) with Voila.

    Listens on 127.0.0.1:8866 by default with notebook sources stripped, tracebacks hidden, only
    the dashboards served and pre-started kernels. A bind to another address is refused unless a
    token (16 characters or more) is configured; requests must name loopback or an --allowed-host. The pages read the latest published run; run `make run` first.
    """
    from research.config import get_settings
    from research.viz.panels.server import DEFAULT_PORT, check_bind, serve

    port = DEFAULT_PORT if port is None else port

    if token is None and (configured := get_settings().dashboards_token) is not None:
        token = configured.get_secret_value()
    try:
        check_bind(ip, token=token)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    host = f"[{ip}]" if ":" in ip else ip
    typer.echo(f"serving the dashboards on http://{host}:{port}{base_url} (Ctrl-C stops)")
    serve(ip=ip, port=port, open_browser=open_browser, token=token, pool_size=pool_size,
          cull_idle_timeout=cull_idle_timeout, pipeline=pipeline, base_url=base_url,
          allowed_hosts=tuple(allowed_host or ()), max_viewers=max_viewers)


def register(app: typer.Typer) -> None:
    """Add the ``dashboards`` command to the root app."""
    app.command("dashboards")(dashboards)
