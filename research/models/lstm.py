"""A Keras 3 LSTM forecaster with flat hyperparameters.

The code is backend-neutral: set ``KERAS_BACKEND`` (``tensorflow`` by default, ``jax`` or
``torch``) before the first ``import keras``. TensorFlow-only switches (op determinism, XLA)
are applied only on that backend.

The saved model is self-contained: the scaler fitted on the training window is baked into a
``Normalization`` layer at the input and the target's scale into a ``Rescaling`` layer at the
output, so the ``.keras`` file maps raw feature windows ``[N, T, F]`` to the target's units.
A JSON file next to it (``<name>.json``) keeps the hyperparameters, feature names, scaler and
its fit range, and the training history.

Examples
--------
>>> model = LSTMForecaster(lookback=30, units=16, epochs=5, seed=1).fit(train)
>>> model.predict(features).iloc[-1]      # forecast made at the last bar
>>> model.save(get_settings().artifact_root / "forecasters" / "spx.keras")
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from research.config import get_settings
from research.defaults import LSTM
from research.models.base import Forecaster, TrainingError, check_model_path, check_training_data
from research.models.datasets import Scaler, WindowedDataset, chronological_split

__all__ = ["LSTMParams", "LSTMForecaster", "build_network", "configure_backend", "weights_sha256"]

log = logging.getLogger(__name__)
_CONFIGURED: dict[str, Any] = {}


@dataclass(frozen=True)
class LSTMParams:
    """Flat, YAML-friendly hyperparameters of :class:`LSTMForecaster` (defaults: ``research.defaults.LSTM``)."""

    lookback: int = LSTM["lookback"]
    units: int = LSTM["units"]
    layers: int = LSTM["layers"]
    dropout: float = LSTM["dropout"]
    lr: float = LSTM["lr"]
    batch_size: int = LSTM["batch_size"]
    epochs: int = LSTM["epochs"]
    patience: int = LSTM["patience"]
    seed: int = LSTM["seed"]
    jit_compile: bool | str = LSTM["jit_compile"]
    deterministic: bool = LSTM["deterministic"]
    val_fraction: float = LSTM["val_fraction"]
    steps_per_execution: int = LSTM["steps_per_execution"]

    def __post_init__(self) -> None:
        for name in ("lookback", "units", "layers", "batch_size", "epochs", "steps_per_execution"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5); got {self.val_fraction}")


def _keras() -> Any:
    """Import Keras, with TensorFlow's C++ logging quieted first (it is read once, at import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def configure_backend(*, threads: int | None = None) -> str:
    """Set thread counts once (before the backend starts) and return the Keras backend name.

    ``threads`` defaults to ``WORKBENCH_TF_THREADS`` or 2. TensorFlow ignores a late change.
    """
    keras = _keras()

    backend = keras.backend.backend()
    if _CONFIGURED.get("backend"):
        return backend
    n = int(threads or get_settings().tf_threads)
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))
        except RuntimeError:  # the runtime already started; keep its settings
            pass
    elif backend == "torch":
        import torch

        torch.set_num_threads(n)
    _CONFIGURED["backend"] = backend
    return backend


def _seed_everything(seed: int, *, deterministic: bool) -> None:
    """Seed Python, NumPy and the backend; on TensorFlow switch op determinism on or off."""
    keras = _keras()

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import config as tf_config

        if deterministic and not tf_config.is_op_determinism_enabled():
            tf_config.enable_op_determinism()
        elif not deterministic and tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()


def _resolve_jit(jit_compile: bool | str, *, deterministic: bool) -> bool:
    """XLA on or off: ``"auto"`` is on for JAX and off for TensorFlow.

    On TensorFlow (CPU) the recurrent loop compiled by XLA trained this network slower than
    TensorFlow's own kernels (``benchmarks/bench_lstm.py --profile``: 0.6-0.85x in every
    interleaved measurement on a 2-core Xeon), so XLA is opt-in there (``jit_compile=True``).
    Keras runs TensorFlow without XLA while op determinism is enabled (not every XLA kernel
    honours it), so deterministic mode ignores ``jit_compile=True``.
    """
    keras = _keras()

    backend = keras.backend.backend()
    if jit_compile == "auto":
        return backend == "jax"
    if jit_compile and deterministic and backend == "tensorflow":
        log.warning("deterministic mode runs TensorFlow without XLA; jit_compile=True ignored")
        return False
    return bool(jit_compile)


def build_network(
    *,
    lookback: int,
    n_features: int,
    units: int,
    layers: int = 1,
    dropout: float = 0.0,
    classify: bool = False,
    scaler: tuple[np.ndarray, np.ndarray] | None = None,
    target_scale: tuple[float, float] | None = None,
):
    """The network: (normalise), ``layers`` stacked LSTMs, one dense output, (rescale).

    The trainable layers, and so the weight list, are the same with or without the constants.

    Parameters
    ----------
    scaler : (mean, variance), optional
        The training scaler as constants at the input, so the model takes raw windows. Without
        it the model takes standardised windows (the training core).
    target_scale : (mean, std), optional
        The target's scale as constants at the output (regression), so the model answers in
        target units. Without it the output is the standardised target.
    """
    keras = _keras()
    from keras import layers as L

    inputs = keras.Input(shape=(lookback, n_features), name="window")  # [N, T, F]
    x = inputs
    if scaler is not None:
        mean, variance = scaler
        x = L.Normalization(axis=-1, mean=mean, variance=variance, name="scaler")(x)  # [N, T, F]
    for i in range(layers):
        last = i == layers - 1
        x = L.LSTM(units, return_sequences=not last, name=f"lstm_{i}")(x)  # [N, T, U] / [N, U]
        if dropout:
            x = L.Dropout(dropout, name=f"dropout_{i}")(x)
    if classify:
        out = L.Dense(1, activation="sigmoid", name="p_up")(x)  # [N, 1] probability of up
    else:
        out = L.Dense(1, name="z")(x)  # [N, 1] standardised target
        if target_scale is not None:
            y_mean, y_std = target_scale
            out = L.Rescaling(scale=float(y_std), offset=float(y_mean), name="target")(out)  # [N, 1]
    return keras.Model(inputs, out, name="lstm_forecaster")


class _Trainer:
    """A compiled training core reused by every fit of the same architecture in a process.

    Tracing a Keras training step costs seconds per new model; walk-forward evaluation fits
    the same architecture many times. Each fit resets the core to the seed's fresh
    initialisation (weights, dropout RNG state) and zeroes the optimizer's state, so a fit's
    result does not depend on what the core trained before.
    """

    _cache: dict[tuple, _Trainer] = {}

    def __init__(self, arch: dict, *, classify: bool, jit: bool, steps: int) -> None:
        keras = _keras()

        self.arch = arch
        self.core = build_network(**arch)
        self.core.compile(
            optimizer=keras.optimizers.Adam(learning_rate=1e-3),  # set per fit in reset()
            loss="binary_crossentropy" if classify else "mse",
            jit_compile=jit, steps_per_execution=steps,
        )
        self.core.optimizer.build(self.core.trainable_variables)

    @classmethod
    def get(cls, *, arch: dict, jit: bool, steps: int) -> _Trainer:
        keras = _keras()

        key = (keras.backend.backend(), tuple(sorted(arch.items())), jit, steps)
        if key not in cls._cache:
            if len(cls._cache) >= 4:
                cls._cache.pop(next(iter(cls._cache)))
            cls._cache[key] = cls(arch, classify=arch["classify"], jit=jit, steps=steps)
        return cls._cache[key]

    def reset(self, seed: int, *, lr: float) -> None:
        """Fresh weights and dropout RNG state for ``seed``; optimizer state zeroed; ``lr`` set."""
        keras = _keras()

        keras.utils.set_random_seed(int(seed))
        fresh = build_network(**self.arch)
        self.core.set_weights(fresh.get_weights())
        for mine, new in zip(_seed_generators(self.core), _seed_generators(fresh), strict=True):
            mine.state.assign(new.state.value)
        opt = self.core.optimizer
        for v in opt.variables:
            if v.path.endswith("learning_rate"):
                v.assign(float(lr))
            else:
                v.assign(keras.ops.zeros(v.shape, dtype=v.dtype))
        self.core.stop_training = False
        keras.utils.set_random_seed(int(seed))  # same shuffling whatever the build consumed


def _seed_generators(model: Any) -> list:
    return [layer.seed_generator for layer in model.layers if getattr(layer, "seed_generator", None) is not None]


def weights_sha256(model: Any) -> str:
    """sha256 over a Keras model's weights (bytes, in order): equal hashes mean equal weights."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


class LSTMForecaster(Forecaster):
    """LSTM forecaster of the dataset's target.

    Other Parameters
    ----------------
    lookback, units, layers, dropout, lr, batch_size, epochs, patience, seed : int or float
        Flat hyperparameters (see :class:`LSTMParams`).
    jit_compile : bool or "auto"
        XLA compilation. ``"auto"`` turns it on for JAX and leaves it off for TensorFlow,
        whose own CPU kernels train this network faster than XLA's compiled loop (see
        ``benchmarks/bench_lstm.py --profile``); ``True`` forces it outside deterministic mode.
    deterministic : bool
        Seed everything and, on TensorFlow, enable op determinism: the same seed and data give
        the same weights on CPU. Keras then trains TensorFlow without XLA.
    val_fraction : float
        Tail of the training windows held out (after an embargo of ``horizon``) for early
        stopping when ``fit`` gets no ``validation``; 0 trains on everything for ``epochs``.
    """

    name = "lstm"

    def __init__(self, **params: Any) -> None:
        self.params = LSTMParams(**params)
        super().__init__(lookback=self.params.lookback)
        self.model = None
        self.scaler: Scaler | None = None
        self.history_: dict[str, list[float]] = {}
        self.y_mean_, self.y_scale_ = 0.0, 1.0
        self.registry: dict[str, str] | None = None  # name, version, run_id once registered

    # -- training --------------------------------------------------------------------------
    def _split_validation(self, data: WindowedDataset) -> tuple[WindowedDataset, WindowedDataset | None]:
        p = self.params
        if p.val_fraction <= 0 or len(data) < 20:
            return data, None
        tr, va, _ = chronological_split(len(data), val_fraction=p.val_fraction, test_fraction=0.0, embargo=data.horizon)
        val = data.subset(va)
        return data.subset(tr, eval_start=val.index[0]), val

    def fit(
        self,
        data: WindowedDataset,
        *,
        validation: WindowedDataset | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        verbose: int = 0,
    ) -> LSTMForecaster:
        """Train on ``data`` (time-ordered windows; batches are shuffled within it only).

        Raises
        ------
        TrainingError
            NaN or Inf in the inputs (before any training), or a loss that became NaN.
        LeakageError
            ``data`` reaches its evaluation window (see :class:`~research.models.datasets.Scaler`).
        """
        keras = _keras()

        self._begin_fit(data)
        if validation is None:
            data, validation = self._split_validation(data)
        else:
            check_training_data(validation, what="validation data")
        p = self.params
        configure_backend()
        _seed_everything(p.seed, deterministic=p.deterministic)
        jit = _resolve_jit(p.jit_compile, deterministic=p.deterministic)
        self.scaler = Scaler().fit(data)
        classify = data.target == "direction"
        y = data.y.astype("float64")
        self.y_mean_ = 0.0 if classify else float(y.mean())
        self.y_scale_ = 1.0 if classify else float(y.std() or 1.0)
        arch = dict(lookback=p.lookback, n_features=data.n_features, units=p.units, layers=p.layers,
                    dropout=p.dropout, classify=classify)
        trainer = _Trainer.get(arch=arch, jit=jit, steps=p.steps_per_execution)
        trainer.reset(p.seed, lr=p.lr)
        X, yz = self._scaled(data, trim=jit)  # [N, T, F], [N]
        callbacks = [keras.callbacks.TerminateOnNaN()]
        val = None
        if validation is not None and len(validation):
            val = self._scaled(validation, trim=jit)
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=p.patience, restore_best_weights=True))
        if on_epoch_end is not None:
            callbacks.append(keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch_end(epoch, {k: float(v) for k, v in (logs or {}).items()})))
        hist = trainer.core.fit(X, yz, batch_size=p.batch_size, epochs=p.epochs, validation_data=val,
                                shuffle=True, callbacks=callbacks, verbose=verbose)
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self.model = build_network(**arch, scaler=(self.scaler.mean_, self.scaler.scale_**2),
                                   target_scale=None if classify else (self.y_mean_, self.y_scale_))
        self.model.set_weights(trainer.core.get_weights())
        self._check_finite()
        return self

    def _scaled(self, data: WindowedDataset, *, trim: bool) -> tuple[np.ndarray, np.ndarray]:
        """Standardised windows and target; with XLA, the oldest windows that do not fill a
        whole batch are left out so every step has one shape (one compilation)."""
        X = self.scaler.transform(data.X)
        y = ((data.y.astype("float64") - self.y_mean_) / self.y_scale_).astype("float32")
        if trim and len(X) > self.params.batch_size:
            cut = len(X) % self.params.batch_size
            X, y = X[cut:], y[cut:]
        return X, y

    def _check_finite(self) -> None:
        losses = self.history_.get("loss", [])
        bad = [i for i, v in enumerate(losses) if not np.isfinite(v)]
        weights_ok = all(np.isfinite(w).all() for w in self.model.get_weights())
        if bad or not weights_ok or not losses:
            epoch = bad[0] + 1 if bad else len(losses)
            self.fitted_range = None
            raise TrainingError(
                f"training loss became NaN/Inf at epoch {epoch} (lr={self.params.lr}, "
                f"batch_size={self.params.batch_size}); lower the learning rate or check the "
                "features' scale"
            )

    # -- predicting ------------------------------------------------------------------------
    def _predict_arrays(self, X: np.ndarray, past_target: np.ndarray) -> np.ndarray:
        chunk = 4096
        outs = [np.asarray(self.model.predict_on_batch(X[i:i + chunk])).reshape(-1)
                for i in range(0, X.shape[0], chunk)]
        return np.concatenate(outs) if outs else np.empty(0)

    def compile_for_inference(self, *, jit_compile: bool | str = "auto") -> LSTMForecaster:
        """Compile the model for low-latency ``predict_on_batch`` (XLA where the backend has it).

        One window then answers in about a millisecond on CPU instead of several; each new batch
        shape compiles once (about a second), so this pays off for repeated small predictions
        (serving), not for one pass over a long history.
        """
        keras = _keras()

        self._require_fitted()
        backend = keras.backend.backend()
        jit = backend in ("tensorflow", "jax") if jit_compile == "auto" else bool(jit_compile)
        if backend == "tensorflow" and jit:
            from tensorflow.python.framework import config as tf_config

            was = tf_config.is_op_determinism_enabled()
            if was:  # Keras declines XLA while op determinism is on; a forward pass needs no RNG
                tf_config.disable_op_determinism()
            try:
                self.model.compile(jit_compile=True)
            finally:
                if was:
                    tf_config.enable_op_determinism()
        else:
            self.model.compile(jit_compile=jit)
        return self

    def weights_sha256(self) -> str:
        """sha256 of the fitted weights (see :func:`weights_sha256`)."""
        self._require_fitted()
        return weights_sha256(self.model)

    # -- persistence -----------------------------------------------------------------------
    def metadata(self) -> dict:
        """Everything but the weights: hyperparameters, features, scaler and fit range."""
        keras = _keras()

        self._require_fitted()
        return {
            "kind": "LSTMForecaster", "params": asdict(self.params), "horizon": self.horizon,
            "target": self.target, "feature_names": list(self.feature_names),
            "fitted_range": list(self.fitted_range), "scaler": self.scaler.to_dict(),
            "y_mean": self.y_mean_, "y_scale": self.y_scale_, "history": self.history_,
            "keras_backend": keras.backend.backend(), "keras_version": keras.__version__,
            "weights_sha256": weights_sha256(self.model),
        }

    def save(self, path: str | Path) -> Path:
        """Save the model as ``path`` (native ``.keras``) plus its metadata ``path.json``."""
        p = Path(path)
        if p.suffix != ".keras":
            raise ValueError(f"models are saved in the native .keras format; got {p.name!r}")
        self._require_fitted()
        p.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(p)
        p.with_suffix(".json").write_text(json.dumps(self.metadata(), indent=1), encoding="utf-8")
        return p

    @classmethod
    def from_keras(cls, model: Any, meta: dict) -> LSTMForecaster:
        """Wrap a loaded Keras model with its metadata (see :meth:`metadata`)."""
        if meta.get("kind") != "LSTMForecaster":
            raise ValueError(f"metadata is not an LSTMForecaster's (kind {meta.get('kind')!r})")
        self = cls(**meta["params"])
        self.model = model
        self.horizon, self.target = int(meta["horizon"]), meta["target"]
        self.feature_names = tuple(meta["feature_names"])
        self.fitted_range = tuple(meta["fitted_range"])
        self.scaler = Scaler.from_dict(meta["scaler"])
        self.y_mean_, self.y_scale_ = float(meta["y_mean"]), float(meta["y_scale"])
        self.history_ = meta.get("history", {})
        expected = (None, self.lookback, len(self.feature_names))
        if tuple(model.input_shape) != expected:
            raise ValueError(f"model input {tuple(model.input_shape)} does not match metadata {expected}")
        return self

    @classmethod
    def load(cls, path: str | Path, *, fast_inference: bool = False) -> LSTMForecaster:
        """Load a model saved with :meth:`save`, only from the workbench's stores, safe mode on.

        ``fast_inference`` calls :meth:`compile_for_inference` (for serving one window at a time).
        """
        keras = _keras()

        p = check_model_path(path)
        if p.suffix != ".keras":
            raise ValueError(f"only native .keras models load; got {p.name!r}")
        meta_path = p.with_suffix(".json")
        if not meta_path.exists():
            raise FileNotFoundError(f"model metadata {meta_path} is missing (saved with save()?)")
        configure_backend()
        model = keras.saving.load_model(p, compile=False, safe_mode=True)
        out = cls.from_keras(model, json.loads(meta_path.read_text(encoding="utf-8")))
        return out.compile_for_inference() if fast_inference else out
