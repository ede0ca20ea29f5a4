"""One settings object for the workbench: where things are, and the keys.

The default values of functions, the CLI and the pipelines are the other half of the
configuration; they live in :mod:`research.defaults`.

Values come, in order of precedence, from keyword overrides, the process environment, a
git-ignored ``.env`` file at the project root, and the defaults below.

=============================  ===========================================  =====================
setting                        environment variable                         default
=============================  ===========================================  =====================
``home``                       ``WORKBENCH_HOME``                           project root (cwd)
``data_dir``                   ``WORKBENCH_DATA_DIR``                       ``<home>/data``
``runs_dir``                   ``WORKBENCH_RUNS_DIR``                       ``<home>/runs``
``tracking_uri``               ``MLFLOW_TRACKING_URI``                      ``sqlite:///<home>/mlruns/mlflow.db``
``artifact_root``              ``WORKBENCH_ARTIFACT_ROOT``                  ``<home>/mlruns/artifacts``
``freshness_ttl``              ``WORKBENCH_FRESHNESS_TTL`` (seconds)        ``43200`` (12 h)
``coingecko_api_key``          ``COINGECKO_API_KEY`` (pro)                  unset
``coingecko_demo_api_key``     ``COINGECKO_DEMO_API_KEY``                   unset
``newsapi_key``                ``NEWSAPI_KEY`` (newsapi.org)                unset
``ccxt_exchange``              ``WORKBENCH_CCXT_EXCHANGE``                  ``binance``
``ccxt_api_url``               ``WORKBENCH_CCXT_API_URL`` (a mirror)        unset (the exchange's)
=============================  ===========================================  =====================

API keys are secrets: they are never logged, never written into a notebook or a run, and
``repr(settings)`` masks them.

Settings are resolved once per state of their inputs: :func:`get_settings` reads the ``.env``
file again only when it changed (its modification time or size) or when the environment
changed, so a test that sets a variable sees it at once.
:func:`refresh_settings` forgets what was resolved (after editing ``.env`` in place within
the same instant, say).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

__all__ = ["Settings", "get_settings", "refresh_settings", "project_root", "read_dotenv"]


def project_root() -> Path:
    """The workbench's home: ``WORKBENCH_HOME``, else the checkout holding this package.

    An editable install (``pip install -e .``) resolves to the repository, so notebooks
    executed by papermill in another working directory still find ``data/`` and ``mlruns/``.
    """
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd().resolve()


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines of a ``.env`` file (``#`` comments, optional quotes)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build one with :func:`get_settings`."""

    home: Path
    data_dir: Path
    runs_dir: Path
    tracking_uri: str
    artifact_root: Path
    freshness_ttl: float = 12 * 3600.0
    coingecko_api_key: str | None = field(default=None, repr=False)
    coingecko_demo_api_key: str | None = field(default=None, repr=False)
    newsapi_key: str | None = field(default=None, repr=False)
    ccxt_exchange: str = "binance"
    ccxt_api_url: str | None = None

    @property
    def store_dir(self) -> Path:
        """Where validated datasets live (``<data_dir>/store``)."""
        return self.data_dir / "store"

    @property
    def quarantine_dir(self) -> Path:
        """Where rejected rows live, with their reason codes (``<data_dir>/quarantine``)."""
        return self.data_dir / "quarantine"

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (paths are coerced to ``Path``)."""
        path_fields = {"home", "data_dir", "runs_dir", "artifact_root"}
        coerced = {k: Path(v) if k in path_fields else v for k, v in changes.items()}
        return replace(self, **coerced)

    def __repr__(self) -> str:  # keys masked
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr
        )
        keys = ", ".join(
            f"{name}={'***' if getattr(self, name) else None}"
            for name in ("coingecko_api_key", "coingecko_demo_api_key", "newsapi_key")
        )
        return f"Settings({shown}, {keys})"


def get_settings(**overrides: object) -> Settings:
    """The settings for the current environment and ``.env`` (resolved once per state of them).

    Parameters
    ----------
    **overrides
        Field values that win over everything else, e.g. ``data_dir=tmp_path``.
    """
    home = project_root()
    try:
        stat = (home / ".env").stat()
        stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    settings = _resolve(home, tuple(sorted(os.environ.items())), stamp)
    return settings.with_overrides(**overrides) if overrides else settings


def refresh_settings() -> None:
    """Forget the resolved settings; the next :func:`get_settings` reads everything again."""
    _resolve.cache_clear()


@lru_cache(maxsize=16)
def _resolve(home: Path, environ: tuple[tuple[str, str], ...], dotenv_stamp: tuple[int, int] | None) -> Settings:
    """Settings from ``.env`` under ``home`` and the environment (``environ``: its items)."""
    env = {**read_dotenv(home / ".env"), **dict(environ)}

    def path(var: str, default: Path) -> Path:
        value = env.get(var)
        p = Path(value).expanduser() if value else default
        return p if p.is_absolute() else (home / p)

    data_dir = path("WORKBENCH_DATA_DIR", home / "data")
    settings = Settings(
        home=home,
        data_dir=data_dir,
        runs_dir=path("WORKBENCH_RUNS_DIR", home / "runs"),
        tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlruns' / 'mlflow.db'}",
        artifact_root=path("WORKBENCH_ARTIFACT_ROOT", home / "mlruns" / "artifacts"),
        freshness_ttl=float(env.get("WORKBENCH_FRESHNESS_TTL") or 12 * 3600),
        coingecko_api_key=env.get("COINGECKO_API_KEY") or None,
        coingecko_demo_api_key=env.get("COINGECKO_DEMO_API_KEY") or None,
        newsapi_key=env.get("NEWSAPI_KEY") or None,
        ccxt_exchange=(env.get("WORKBENCH_CCXT_EXCHANGE") or "binance").strip().lower(),
        ccxt_api_url=env.get("WORKBENCH_CCXT_API_URL") or None,
    )
    return settings
