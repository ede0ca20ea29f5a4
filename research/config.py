"""One settings object for the workbench: where things are, the services it talks to, the keys.

The default values of functions, the CLI and the pipelines are the other half of the
configuration; they live in :mod:`research.defaults`.

:class:`Settings` is a `pydantic-settings <https://docs.pydantic.dev/latest/concepts/pydantic_settings/>`_
model. Every value comes, in order of precedence, from

1. keyword overrides (``get_settings(data_dir=...)``),
2. the process environment,
3. a git-ignored ``.env`` file at the project root (``WORKBENCH_HOME``),
4. the defaults of the model.

Nothing else in the package reads the environment for a workbench setting: every
``WORKBENCH_*`` variable and every secret's name is a field here, so a value in ``.env`` counts
wherever it is used. ``workbench config`` prints the effective value of each field and where it
came from; ``python -m research.config --markdown`` prints the table of ``docs/configuration.md``.

Secrets (API keys, the dashboards' token, the alert channels' passwords) are
:class:`pydantic.SecretStr`: printed as ``**********``, never logged, never written into a
notebook or a run. Channels may name other variables for their secrets (``secret_env`` in the
alert channel file); :meth:`Settings.secret` reads those from the same environment and ``.env``.

Settings are resolved once per state of their inputs: :func:`get_settings` reads the ``.env``
file again only when it changed (its modification time or size) or when the environment
changed, so a test that sets a variable sees it at once. :func:`refresh_settings` forgets what
was resolved (after editing ``.env`` in place within the same instant, say).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "Settings", "SettingsError", "get_settings", "refresh_settings", "project_root", "read_dotenv",
    "describe_settings", "settings_markdown", "mask_url",
]

#: Where a value came from, as :func:`describe_settings` reports it.
Origin = Literal["override", "environment", ".env", "default"]


class SettingsError(ValueError):
    """A setting has a value of the wrong kind; the message names the variable and where it was set."""


def project_root() -> Path:
    """The workbench's home: ``WORKBENCH_HOME``, else the checkout holding this package.

    An editable install (``pip install -e .``) resolves to the repository, so notebooks
    executed by papermill in another working directory still find ``data/`` and ``mlruns/``.
    ``WORKBENCH_HOME`` comes from the environment only: it says where ``.env`` is.
    """
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd().resolve()


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` pairs of a ``.env`` file (``#`` comments, ``export``, quotes), as python-dotenv reads them."""
    if not Path(path).is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path, encoding="utf-8").items() if v is not None}


def mask_url(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (for printing)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@")))


def _env(name: str, *, secret: bool = False, doc: str) -> dict[str, Any]:
    """Field options: read from variable ``name`` (also the field name, for overrides)."""
    return {"validation_alias": AliasChoices(name), "description": doc, "json_schema_extra": {"env": name, "secret": secret}}


_PATHS = ("data_dir", "runs_dir", "artifact_root", "alerts_config", "news_config")


class Settings(BaseSettings):
    """Resolved settings; build one with :func:`get_settings`.

    Paths given relative resolve against ``home``. Unset paths and URLs derive from ``home`` and
    ``data_dir`` (see each field).
    """

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True, populate_by_name=True,
        env_file_encoding="utf-8", validate_default=True,
    )

    home: Path = Field(default_factory=project_root, **_env(
        "WORKBENCH_HOME", doc="The project folder: `.env`, `data/`, `runs/`, `mlruns/` (environment only; "
        "default: the checkout holding the package, else the working directory)."))
    data_dir: Path | None = Field(None, **_env(
        "WORKBENCH_DATA_DIR", doc="Market data store, quarantine and paper ledger (default `<home>/data`)."))
    runs_dir: Path | None = Field(None, **_env(
        "WORKBENCH_RUNS_DIR", doc="Pipeline runs: executed notebooks, published results (default `<home>/runs`)."))
    tracking_uri: str | None = Field(None, **_env(
        "MLFLOW_TRACKING_URI", doc="MLflow tracking store (default `sqlite:///<home>/mlruns/mlflow.db`)."))
    artifact_root: Path | None = Field(None, **_env(
        "WORKBENCH_ARTIFACT_ROOT", doc="MLflow artifacts, one folder per experiment (default `<home>/mlruns/artifacts`)."))
    mlflow_ui_url: str | None = Field(None, **_env(
        "MLFLOW_UI_URL", doc="Base URL of the MLflow UI for run links (default: an http tracking URI, "
        "else `http://127.0.0.1:5000`)."))
    public_tracking_url: str | None = Field(None, **_env(
        "WORKBENCH_PUBLIC_TRACKING_URL", doc="MLflow UI address dashboard viewers can open; the dashboards "
        "link to MLflow runs only when it is set (unset: no links)."))
    ledger_url: str | None = Field(None, repr=False, **_env(
        "WORKBENCH_LEDGER_URL", doc="SQLAlchemy URL of the paper ledger and alert outbox "
        "(default `sqlite:///<data_dir>/ledger.db`; a password in it is masked when printed)."))
    freshness_ttl: float = Field(12 * 3600.0, ge=0, **_env(
        "WORKBENCH_FRESHNESS_TTL", doc="Seconds a fetched dataset counts as fresh before it is fetched again."))
    dask_scheduler: str = Field("local", **_env(
        "WORKBENCH_DASK_SCHEDULER", doc="`local` or a Dask scheduler address (`tcp://host:8786`) for sweeps and fan-outs."))
    tf_threads: int = Field(2, ge=1, **_env(
        "WORKBENCH_TF_THREADS", doc="Threads TensorFlow uses per operation (set before the first model is built)."))
    ccxt_exchange: str = Field("binance", min_length=1, **_env(
        "WORKBENCH_CCXT_EXCHANGE", doc="The ccxt exchange id crypto candles are fetched from (case-insensitive)."))
    ccxt_api_url: str | None = Field(None, **_env(
        "WORKBENCH_CCXT_API_URL", doc="Another API host for the ccxt exchange, e.g. a mirror (default: the "
        "exchange's own)."))
    alerts_config: Path | None = Field(None, **_env(
        "WORKBENCH_ALERTS_CONFIG", doc="The alert channel file (default `<home>/alerts.yaml`; "
        "see `alerts.example.yaml`)."))
    news_config: Path | None = Field(None, **_env(
        "WORKBENCH_NEWS_CONFIG", doc="The news file: feeds, keywords, News API queries (default `<home>/news.yaml`; "
        "see `news.example.yaml`)."))
    figures: Literal["inline", "page"] = Field("inline", **_env(
        "WORKBENCH_FIGURES", doc="How dashboards draw figures: `inline` (notebook) or `page` "
        "(set by the dashboards server for its kernels)."))
    debug: bool = Field(False, **_env(
        "WORKBENCH_DEBUG", doc="Print full tracebacks of errors in the CLI (same as `--debug`)."))
    pipeline_run: str | None = Field(None, **_env(
        "WORKBENCH_PIPELINE_RUN", doc="The id of the pipeline run a stage notebook belongs to "
        "(set by the pipeline runner for its kernels)."))
    coingecko_api_key: SecretStr | None = Field(None, **_env(
        "COINGECKO_API_KEY", secret=True, doc="CoinGecko Pro API key."))
    coingecko_demo_api_key: SecretStr | None = Field(None, **_env(
        "COINGECKO_DEMO_API_KEY", secret=True, doc="CoinGecko Demo API key (free plan)."))
    newsapi_key: SecretStr | None = Field(None, **_env(
        "NEWSAPI_KEY", secret=True, doc="NewsAPI key for news headlines."))
    dashboards_token: SecretStr | None = Field(None, **_env(
        "WORKBENCH_DASHBOARDS_TOKEN", secret=True, doc="Token the dashboards server requires "
        "(needed to bind to a non-loopback address)."))
    webhook_secret: SecretStr | None = Field(None, **_env(
        "WORKBENCH_WEBHOOK_SECRET", secret=True, doc="HMAC key of a webhook alert channel "
        "(the name `alerts.example.yaml` uses for `secret_env`)."))
    smtp_password: SecretStr | None = Field(None, **_env(
        "WORKBENCH_SMTP_PASSWORD", secret=True, doc="Password of an e-mail alert channel "
        "(the name `alerts.example.yaml` uses for `password_env`)."))

    _named: dict[str, str] = PrivateAttr(default_factory=dict)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("ccxt_exchange")
    @classmethod
    def _exchange_id(cls, value: str) -> str:
        """ccxt's exchange ids are lower case."""
        return value.strip().lower()

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        """Resolve relative paths against ``home`` and fill the defaults that derive from it."""
        home = self.home.expanduser()
        values: dict[str, Any] = {"home": home if home.is_absolute() else home.resolve()}
        home = values["home"]
        for name in _PATHS:
            value = getattr(self, name)
            if value is not None:
                value = Path(value).expanduser()
                values[name] = value if value.is_absolute() else home / value
        values.setdefault("data_dir", home / "data")
        values.setdefault("runs_dir", home / "runs")
        values.setdefault("artifact_root", home / "mlruns" / "artifacts")
        values.setdefault("alerts_config", home / "alerts.yaml")
        values.setdefault("news_config", home / "news.yaml")
        values["tracking_uri"] = self.tracking_uri or f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
        values["ledger_url"] = self.ledger_url or f"sqlite:///{values['data_dir'] / 'ledger.db'}"
        self.__dict__.update(values)  # the model is frozen: derived values are set once, here
        return self

    @property
    def store_dir(self) -> Path:
        """Where validated datasets live (``<data_dir>/store``)."""
        return self.data_dir / "store"

    @property
    def quarantine_dir(self) -> Path:
        """Where rejected rows live, with their reason codes (``<data_dir>/quarantine``)."""
        return self.data_dir / "quarantine"

    def secret(self, name: str) -> SecretStr | None:
        """The value of variable ``name`` from the environment, else from ``.env`` (None if unset or empty).

        For secrets whose variable a configuration file names (an alert channel's ``secret_env``).
        """
        value = self._named.get(name)
        return SecretStr(value) if value else None

    def secret_values(self, looks_secret: Callable[[str], bool]) -> set[str]:
        """Every secret's value (8 characters or more), to scrub from outputs.

        The secret fields, and the variables of the environment and ``.env`` whose name
        ``looks_secret``.
        """
        found = {v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)}
        found |= {v for k, v in self._named.items() if looks_secret(k)}
        return {v for v in found if len(v) >= 8}

    def with_overrides(self, **changes: object) -> Settings:
        """The settings with some fields replaced (the same precedence as :func:`get_settings`)."""
        return get_settings(**{**self._overrides(), **changes})

    def _overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k, origin in self._origins.items() if origin == "override"}

    def origin(self, name: str) -> Origin:
        """Where field ``name`` came from: ``override``, ``environment``, ``.env`` or ``default``."""
        return self._origins.get(name, "default")  # type: ignore[return-value]


def env_name(name: str) -> str:
    """The variable field ``name`` is read from."""
    return Settings.model_fields[name].json_schema_extra["env"]  # type: ignore[index]


def is_secret(name: str) -> bool:
    """Whether field ``name`` holds a secret."""
    return bool(Settings.model_fields[name].json_schema_extra["secret"])  # type: ignore[index]


def get_settings(**overrides: object) -> Settings:
    """The settings for the current environment and ``.env`` (resolved once per state of them).

    Parameters
    ----------
    **overrides
        Field values that win over everything else, e.g. ``data_dir=tmp_path``.

    Raises
    ------
    SettingsError
        A value has the wrong kind (the message names the variable and where it was set).
    """
    home = Path(overrides["home"]) if overrides.get("home") is not None else project_root()
    try:
        stat = (home / ".env").stat()
        stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    environ = tuple(sorted(os.environ.items()))
    if not overrides:
        return _resolve(home, environ, stamp)
    return _build(home, dict(environ), dict(overrides))


def refresh_settings() -> None:
    """Forget the resolved settings; the next :func:`get_settings` reads everything again."""
    _resolve.cache_clear()


@lru_cache(maxsize=16)
def _resolve(home: Path, environ: tuple[tuple[str, str], ...], dotenv_stamp: tuple[int, int] | None) -> Settings:
    """Settings from ``.env`` under ``home`` and the environment (``environ``: its items)."""
    return _build(home, dict(environ), {})


def _build(home: Path, environ: Mapping[str, str], overrides: dict[str, Any]) -> Settings:
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; settings are {', '.join(Settings.model_fields)}")
    dotenv = read_dotenv(home / ".env")
    dotenv.pop("WORKBENCH_HOME", None)  # it says where .env is; a value inside .env cannot move it
    origins: dict[str, str] = {}
    for name in Settings.model_fields:
        var = env_name(name)
        if name in overrides:
            origins[name] = "override"
        elif environ.get(var):
            origins[name] = "environment"
        elif dotenv.get(var) and name != "home":
            origins[name] = ".env"
    init = {**overrides, "home": overrides.get("home", home)}
    try:
        settings = Settings(_env_file=home / ".env", **init)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, origins)) from None
    settings._named.update({k: v for k, v in dotenv.items() if v})
    settings._named.update({k: v for k, v in environ.items() if v})
    settings._origins.update(origins)
    return settings


def _explain(exc: ValidationError, origins: dict[str, str]) -> str:
    """One sentence per wrong value: the variable, where it was set, what is wrong (never a secret's value)."""
    aliases = {env_name(n): n for n in Settings.model_fields}
    parts = []
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else "settings"
        name = aliases.get(loc, loc)
        where = {"override": "an override", "environment": "the environment", ".env": ".env"}.get(
            origins.get(name, ""), "the defaults")
        shown = "" if name in Settings.model_fields and is_secret(name) else f"={err.get('input')!r}"
        parts.append(f"setting {env_name(name) if name in Settings.model_fields else loc}{shown} "
                     f"(from {where}): {err['msg']}")
    return "; ".join(parts)


def _shown(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name)
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else None
    if name in ("ledger_url", "tracking_uri"):
        return mask_url(str(value))
    return str(value) if not isinstance(value, bool) else str(value).lower()


def describe_settings(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Each setting's field, variable, effective value (secrets masked) and origin.

    Returns
    -------
    list of dict
        ``{"setting", "variable", "value", "origin", "secret"}`` per field, in the model's order.
    """
    settings = settings if settings is not None else get_settings()
    return [{"setting": name, "variable": env_name(name), "value": _shown(settings, name),
             "origin": settings.origin(name), "secret": is_secret(name)} for name in Settings.model_fields]


def settings_markdown() -> str:
    """The Markdown page of every setting (``docs/configuration.md``), generated from :class:`Settings`."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `python -m research.config --markdown`; tests/test_config.py checks it -->",
        "",
        "Every setting of the workbench is a field of `research.config.Settings`. A value comes, in",
        "order of precedence, from a keyword override (`get_settings(data_dir=...)`), the process",
        "environment, the git-ignored `.env` file at the project root, and the default below.",
        "`workbench config` prints the effective value of each and where it came from (`--json` too);",
        "secrets are always printed masked.",
        "",
        "| setting | variable | default | secret | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "derived" if default is None or field.default_factory else f"`{str(default).lower()}`"
        if is_secret(name) or (default is None and name in ("mlflow_ui_url", "public_tracking_url", "pipeline_run", "ccxt_api_url")):
            shown = "unset"
        text = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | `{env_name(name)}` | {shown} | {'yes' if is_secret(name) else ''} | {text} |")
    lines += ["", "Alert channels may name other variables for their secrets (`secret_env`, `password_env`,",
              "`url_env` in the channel file); those are read from the same environment and `.env`.", ""]
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m research.config", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the settings table of docs/configuration.md")
    args = parser.parse_args(argv)
    if args.markdown:
        print(settings_markdown(), end="")
    else:
        for row in describe_settings():
            print(f"{row['variable']}={row['value'] if row['value'] is not None else ''}  # {row['origin']}")


if __name__ == "__main__":
    _main()
