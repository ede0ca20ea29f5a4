"""LSTM training throughput and inference latency: the workbench's path vs plain Keras defaults.

Same arrays, same network (2 x LSTM(64), lookback 60, 5 features, batch 256, 20,000 windows):

* ``plain``: ``model.compile(optimizer="adam", loss="mse")`` and ``model.fit`` with Keras
  defaults (on a CPU-only TensorFlow that means no XLA);
* ``workbench``: :class:`research.models.lstm.LSTMForecaster` as the training cycle runs it
  (scaler, callbacks, XLA where the backend has it; ``deterministic=False``), and for
  inference the saved model loaded back with ``fast_inference=True`` (XLA-compiled);
* ``workbench-deterministic``: the same in deterministic mode (op determinism; Keras then runs
  TensorFlow without XLA).

Throughput is windows per second over the epochs after the first (the first includes tracing
and XLA compilation, reported separately). Inference latency is the median of repeated
``predict_on_batch`` calls on 1 and 1,024 windows after a warm-up, beside ``model.predict``.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_lstm.py            # full size, about 4-6 min
    .venv/bin/python benchmarks/bench_lstm.py --quick               # small smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

TARGET_SPEEDUP = 1.4
TARGET_ONE_WINDOW_MS = 2.0


def make_dataset(windows: int, lookback: int):
    """Windows of the ``lstm`` feature set over synthetic bars (5 features)."""
    from research.data.sources.synthetic import synthetic_ohlcv
    from research.features.sets import feature_set
    from research.models.datasets import forward_target, make_windows

    bars = windows + lookback + 60
    ohlcv = synthetic_ohlcv("BENCH", bars=bars)
    feats = feature_set(ohlcv, "lstm")
    ds = make_windows(feats, forward_target(ohlcv["close"]), lookback=lookback, horizon=1)
    return ds.subset(slice(len(ds) - windows, len(ds)))


class EpochClock:
    """Wall time of each epoch."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = time.perf_counter()

    def mark(self, *_: object) -> None:
        now = time.perf_counter()
        self.times.append(now - self._t)
        self._t = now


def throughput(clock: EpochClock, n: int) -> dict:
    steady = clock.times[1:] or clock.times
    return {"first_epoch_s": round(clock.times[0], 2), "epoch_s": round(statistics.median(steady), 2),
            "samples_per_s": round(n / statistics.median(steady), 1)}


def train_plain(ds, epochs: int, batch: int) -> tuple[dict, object]:
    import keras

    from research.models.datasets import Scaler
    from research.models.lstm import build_network, configure_backend

    configure_backend()
    keras.utils.set_random_seed(0)
    X = Scaler().fit(ds).transform(ds.X)  # same standardised arrays as the workbench trains on
    y = ((ds.y - ds.y.mean()) / ds.y.std()).astype("float32")
    model = build_network(lookback=ds.lookback, n_features=ds.n_features, units=64, layers=2)
    model.compile(optimizer="adam", loss="mse")  # Keras defaults
    clock = EpochClock()
    cb = keras.callbacks.LambdaCallback(on_epoch_end=clock.mark)
    model.fit(X, y, batch_size=batch, epochs=epochs, callbacks=[cb], verbose=0)
    return {**throughput(clock, len(ds)), "jit_compile": bool(model.jit_compile)}, model


def train_workbench(ds, epochs: int, batch: int, *, deterministic: bool) -> tuple[dict, object]:
    from research.models.lstm import LSTMForecaster

    clock = EpochClock()
    model = LSTMForecaster(lookback=ds.lookback, units=64, layers=2, batch_size=batch, epochs=epochs,
                           val_fraction=0.0, deterministic=deterministic, seed=0)
    model.fit(ds, on_epoch_end=lambda e, logs: clock.mark())
    n = len(ds) - len(ds) % batch  # XLA keeps whole batches only (one shape, one compilation)
    return {**throughput(clock, n), "deterministic": deterministic}, model


def latency_ms(fn, x: np.ndarray, repeats: int) -> float:
    fn(x)  # warm-up (tracing, compilation)
    fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def inference(model, X: np.ndarray, *, quick: bool) -> dict:
    one, batch = X[:1], X[:1024]
    return {
        "predict_on_batch_1_ms": latency_ms(model.predict_on_batch, one, 30 if quick else 200),
        "predict_on_batch_1024_ms": latency_ms(model.predict_on_batch, batch, 5 if quick else 20),
        "predict_1_ms": latency_ms(lambda a: model.predict(a, verbose=0), one, 5 if quick else 20),
    }


def serving_model(model):
    """The trained model saved and loaded back the way it is served (``fast_inference=True``)."""
    import tempfile

    from research.models.lstm import LSTMForecaster

    root = Path(tempfile.mkdtemp(prefix="bench-lstm-"))
    os.environ["WORKBENCH_ARTIFACT_ROOT"] = str(root)  # the loader only reads the workbench's stores
    path = model.save(root / "bench.keras")
    return LSTMForecaster.load(path, fast_inference=True)


def backends() -> dict[str, str]:
    out = {}
    for name, module in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch")):
        out[name] = "installed" if importlib.util.find_spec(module) else "not installed"
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 windows, 2 epochs: a smoke run")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per path (first one is warm-up)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    windows = 4_000 if args.quick else 20_000
    epochs = args.epochs or (2 if args.quick else 4)
    batch, lookback = 256, 60

    import keras

    backend = keras.backend.backend()
    ds = make_dataset(windows, lookback)
    print(f"backend {backend} (keras {keras.__version__}); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {len(ds)} windows "
          f"{tuple(ds.X.shape)}, batch {batch}, {epochs} epochs")
    print("backends: " + ", ".join(f"{k} {v}" for k, v in backends().items()))
    results: dict = {"backend": backend, "windows": len(ds), "epochs": epochs, "batch": batch, "rows": {}}
    plain, plain_model = train_plain(ds, epochs, batch)
    results["rows"]["plain"] = plain
    wb, wb_model = train_workbench(ds, epochs, batch, deterministic=False)
    results["rows"]["workbench"] = wb
    det, _ = train_workbench(ds, epochs, batch, deterministic=True)
    results["rows"]["workbench-deterministic"] = det
    served = serving_model(wb_model)
    results["inference"] = {"plain": inference(plain_model, ds.X, quick=args.quick),
                            "workbench": inference(served.model, ds.X, quick=args.quick)}
    speedup = wb["samples_per_s"] / plain["samples_per_s"]
    results["speedup"] = round(speedup, 2)

    print(f"\n{'training path':26} {'first epoch s':>14} {'epoch s':>8} {'samples/s':>10}")
    for name, row in results["rows"].items():
        print(f"{name:26} {row['first_epoch_s']:14.2f} {row['epoch_s']:8.2f} {row['samples_per_s']:10.0f}")
    print(f"\nspeedup workbench / plain: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x): "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}")
    print(f"\n{'inference (median)':26} {'1 window ms':>12} {'1,024 windows ms':>17} {'predict() 1 ms':>15}")
    for name, row in results["inference"].items():
        print(f"{name:26} {row['predict_on_batch_1_ms']:12.2f} {row['predict_on_batch_1024_ms']:17.1f} {row['predict_1_ms']:15.1f}")
    one = results["inference"]["workbench"]["predict_on_batch_1_ms"]
    print(f"one-window inference {one:.2f} ms (target < {TARGET_ONE_WINDOW_MS} ms): "
          f"{'met' if one < TARGET_ONE_WINDOW_MS else 'NOT met'}")
    missing = [k for k, v in backends().items() if v != "installed"]
    if missing:
        print(f"not measured: {', '.join(missing)} (not installed in this environment; "
              "run with KERAS_BACKEND=<name> where they are)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
