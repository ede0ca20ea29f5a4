"""LSTM training throughput and inference latency: the workbench's path vs plain Keras defaults.

Same arrays, same network (2 x LSTM(64), lookback 60, 5 features, batch 256, 20,000 windows):

* ``plain``: ``model.compile(optimizer="adam", loss="mse")`` and ``model.fit`` with Keras and
  TensorFlow defaults (threads chosen by TensorFlow; on a CPU-only TensorFlow, no XLA);
* ``workbench``: :class:`research.models.lstm.LSTMForecaster` as the training cycle runs it
  (scaler, callbacks, its thread and XLA settings; ``deterministic=False``), and for
  inference the saved model loaded back with ``fast_inference=True`` (XLA-compiled);
* ``workbench-deterministic``: the same in deterministic mode (op determinism, no XLA).

Each path trains in its own process, and the paths are interleaved over ``--rounds`` rounds
(the machine may be shared): throughput is windows per second from the median epoch time
after the first epoch of each run (the first includes tracing and any XLA compilation). Both
paths start from the same initial weights and shuffle order, so their loss curves are printed
side by side. ``--profile`` adds where one epoch's time goes (5,120 windows, interleaved):
an epoch of a trivial model through the same ``fit`` (input pipeline, per-step overhead and
optimizer: everything but the LSTM), the forward pass alone, ``fit`` without and with the
workbench's callbacks, with ``steps_per_execution=8``, with a ``tf.data`` pipeline, with XLA,
and with one or two intra-op threads.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_lstm.py --profile  # full size, about 10-15 min
    .venv/bin/python benchmarks/bench_lstm.py --quick               # small smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
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
    return {"epoch_times": [round(t, 3) for t in clock.times], "first_epoch_s": round(clock.times[0], 2),
            "epoch_s": round(statistics.median(steady), 2), "samples_per_s": round(n / statistics.median(steady), 1)}


def _standardised(ds):
    from research.models.datasets import Scaler

    X = Scaler().fit(ds).transform(ds.X)  # the same standardised arrays the workbench trains on
    y = ((ds.y - ds.y.mean()) / ds.y.std()).astype("float32")
    return X, y


def train_plain(ds, epochs: int, batch: int) -> tuple[dict, object]:
    """Keras and TensorFlow defaults; seeded like the workbench's core (same weights, same shuffle)."""
    import keras

    from research.models.lstm import build_network

    X, y = _standardised(ds)
    keras.utils.set_random_seed(0)
    model = build_network(lookback=ds.lookback, n_features=ds.n_features, units=64, layers=2)
    model.compile(optimizer="adam", loss="mse")  # Keras defaults
    keras.utils.set_random_seed(0)
    clock = EpochClock()
    cb = keras.callbacks.LambdaCallback(on_epoch_end=clock.mark)
    hist = model.fit(X, y, batch_size=batch, epochs=epochs, callbacks=[cb], verbose=0)
    return {**throughput(clock, len(ds)), "loss": hist.history["loss"], "jit_compile": bool(model.jit_compile)}, model


def train_workbench(ds, epochs: int, batch: int, *, deterministic: bool) -> tuple[dict, object]:
    from research.models.lstm import LSTMForecaster, _resolve_jit

    clock = EpochClock()
    model = LSTMForecaster(lookback=ds.lookback, units=64, layers=2, batch_size=batch, epochs=epochs,
                           val_fraction=0.0, deterministic=deterministic, seed=0)
    model.fit(ds, on_epoch_end=lambda e, logs: clock.mark())
    jit = _resolve_jit(model.params.jit_compile, deterministic=deterministic)
    n = len(ds) - len(ds) % batch if jit else len(ds)  # with XLA, whole batches only (one shape)
    return {**throughput(clock, n), "loss": model.history_["loss"], "deterministic": deterministic,
            "jit_compile": jit}, model


def _threads() -> str:
    import tensorflow as tf

    cfg = tf.config.threading
    return f"intra {cfg.get_intra_op_parallelism_threads() or 'auto'}, inter {cfg.get_inter_op_parallelism_threads() or 'auto'}"


def _worker(path: str, windows: int, epochs: int, batch: int, out: Path) -> None:
    """Train one path in this process and write its figures (and, for ``inference``, latencies)."""
    if path == "plain":  # TensorFlow's own default (oneDNN on), whatever the workbench would choose
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    ds = make_dataset(windows, 60)
    if path == "plain":
        row, _ = train_plain(ds, epochs, batch)
    elif path == "inference":
        plain = train_plain(ds.subset(slice(0, 1024)), 1, batch)[1]
        served = serving_model(train_workbench(ds.subset(slice(0, 1024)), 1, batch, deterministic=False)[1])
        quick = windows < 20_000
        row = {"plain": inference(plain, ds.X, quick=quick), "workbench": inference(served.model, ds.X, quick=quick)}
    elif path == "profile":
        row = profile_epoch(ds, batch)
    elif path == "profile-base":
        row = profile_epoch(ds, batch, only=("fit, no callbacks",))
    else:
        row, _ = train_workbench(ds, epochs, batch, deterministic=path == "workbench-deterministic")
    if isinstance(row, dict) and path != "inference":
        row["threads"] = _threads()
    out.write_text(json.dumps(row))


def _epoch_s(model, X, y, batch: int, **fit_kwargs) -> float:
    t0 = time.perf_counter()
    model.fit(X, y, batch_size=batch, epochs=1, verbose=0, shuffle=True, **fit_kwargs)
    return time.perf_counter() - t0


def profile_epoch(ds, batch: int, rounds: int = 2, only: tuple[str, ...] = ()) -> dict:
    """Seconds of one epoch per variant (after a warm-up epoch each), interleaved over ``rounds``."""
    import keras
    import tensorflow as tf

    from research.models.lstm import build_network, configure_backend

    configure_backend()
    X, y = _standardised(ds)

    def lstm(**compile_kwargs):
        model = build_network(lookback=ds.lookback, n_features=ds.n_features, units=64, layers=2)
        model.compile(optimizer="adam", loss="mse", **compile_kwargs)
        return model

    trivial = keras.Sequential([keras.Input((ds.lookback, ds.n_features)), keras.layers.Flatten(), keras.layers.Dense(1)])
    trivial.compile(optimizer="adam", loss="mse")
    base, spe, xla = lstm(jit_compile=False), lstm(jit_compile=False, steps_per_execution=8), lstm(jit_compile=True)
    pipeline = tf.data.Dataset.from_tensor_slices((X, y)).shuffle(len(X), seed=0).batch(batch).prefetch(2)
    callbacks = [keras.callbacks.TerminateOnNaN(), keras.callbacks.LambdaCallback(on_epoch_end=lambda *a: None)]
    variants = {
        "everything but the LSTM (trivial model, same fit)": lambda: _epoch_s(trivial, X, y, batch),
        "forward pass only (predict)": lambda: _timed(lambda: base.predict(X, batch_size=batch, verbose=0)),
        "fit, no callbacks": lambda: _epoch_s(base, X, y, batch),
        "fit, the workbench's callbacks": lambda: _epoch_s(base, X, y, batch, callbacks=callbacks),
        "fit, steps_per_execution=8": lambda: _epoch_s(spe, X, y, batch),
        "fit, tf.data pipeline": lambda: _timed(lambda: base.fit(pipeline, epochs=1, verbose=0)),
        "fit, XLA (jit_compile=True)": lambda: _epoch_s(xla, X[: len(X) - len(X) % batch], y[: len(y) - len(y) % batch], batch),
    }
    variants = {k: v for k, v in variants.items() if not only or k in only}
    for fn in variants.values():
        fn()  # warm-up: tracing, XLA compilation
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(fn())
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


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


def _spawn(path: str, windows: int, epochs: int, batch: int, env: dict | None = None) -> dict:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [sys.executable, __file__, "--worker", path, str(windows), str(epochs), str(batch), tmp.name]
        subprocess.run(cmd, check=True, env={**os.environ, **(env or {})})
        return json.loads(Path(tmp.name).read_text())


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 windows, 2 epochs, 1 round: a smoke run")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (the first one is warm-up)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of the three paths")
    parser.add_argument("--profile", action="store_true", help="also show where one epoch's time goes")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        path, windows, epochs, batch, out = args.worker
        _worker(path, int(windows), int(epochs), int(batch), Path(out))
        return {}
    windows = 4_000 if args.quick else 20_000
    epochs = args.epochs or (2 if args.quick else 3)
    rounds = args.rounds or (1 if args.quick else 2)
    batch, lookback = 256, 60

    import keras

    backend = keras.backend.backend()
    print(f"backend {backend} (keras {keras.__version__}); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {_load()} at start; {windows} windows [N, {lookback}, 5], "
          f"batch {batch}, {epochs} epochs per run, {rounds} interleaved rounds")
    print("backends: " + ", ".join(f"{k} {v}" for k, v in backends().items()))
    paths = ["plain", "workbench", "workbench-deterministic"]
    runs: dict[str, list[dict]] = {p: [] for p in paths}
    for r in range(rounds):
        for path in paths if r % 2 == 0 else paths[::-1]:  # ABC CBA: no path always runs first
            runs[path].append(_spawn(path, windows, epochs, batch))
    results: dict = {"backend": backend, "windows": windows, "epochs": epochs, "batch": batch, "rows": {}}
    for path, rows in runs.items():
        steady = [t for row in rows for t in row["epoch_times"][1:]]
        n = windows - windows % batch if rows[0].get("jit_compile") and path != "plain" else windows
        results["rows"][path] = {
            "first_epoch_s": statistics.median(row["first_epoch_s"] for row in rows),
            "epoch_s": statistics.median(steady), "samples_per_s": n / statistics.median(steady),
            "loss": rows[0]["loss"], "threads": rows[0]["threads"], "jit_compile": rows[0].get("jit_compile"),
        }
    results["inference"] = _spawn("inference", windows, 1, batch)
    plain, wb = results["rows"]["plain"], results["rows"]["workbench"]
    speedup = wb["samples_per_s"] / plain["samples_per_s"]
    results["speedup"] = round(speedup, 2)
    paired = [statistics.median(p["epoch_times"][1:]) / statistics.median(w["epoch_times"][1:])
              for p, w in zip(runs["plain"], runs["workbench"], strict=True)]
    results["paired_speedups"] = [round(x, 2) for x in paired]

    print(f"\n{'training path':26} {'first epoch s':>14} {'epoch s':>8} {'samples/s':>10}  {'XLA':>5}  threads")
    for name, row in results["rows"].items():
        print(f"{name:26} {row['first_epoch_s']:14.2f} {row['epoch_s']:8.2f} {row['samples_per_s']:10.0f}  "
              f"{str(bool(row['jit_compile'])):>5}  {row['threads']}")
    print("\nloss per epoch (same initial weights and shuffle order):")
    for name, row in results["rows"].items():
        print(f"  {name:26} " + "  ".join(f"{v:.6f}" for v in row["loss"]))
    rel = max(abs(a - b) / abs(a) for a, b in zip(plain["loss"], wb["loss"], strict=True))
    print(f"  largest relative difference plain vs workbench: {rel:.2e}")
    det = results["rows"]["workbench-deterministic"]["samples_per_s"] / plain["samples_per_s"]
    print("\nepoch seconds per run (after the first epoch), in run order:")
    for name, rows in runs.items():
        print(f"  {name:26} " + " | ".join(" ".join(f"{t:.1f}" for t in row["epoch_times"][1:]) for row in rows))
    print("speedup per round (plain and workbench run next to each other): "
          + ", ".join(f"{x:.2f}x" for x in paired))
    print(f"\nspeedup workbench / plain: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x): "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}; deterministic / plain: {det:.2f}x; "
          f"load average {_load()} at end")
    print(f"\n{'inference (median)':26} {'1 window ms':>12} {'1,024 windows ms':>17} {'predict() 1 ms':>15}")
    for name, row in results["inference"].items():
        print(f"{name:26} {row['predict_on_batch_1_ms']:12.2f} {row['predict_on_batch_1024_ms']:17.1f} {row['predict_1_ms']:15.1f}")
    one = results["inference"]["workbench"]["predict_on_batch_1_ms"]
    print(f"one-window inference {one:.2f} ms (target < {TARGET_ONE_WINDOW_MS} ms): "
          f"{'met' if one < TARGET_ONE_WINDOW_MS else 'NOT met'}")
    if args.profile:
        pw = 1_024 if args.quick else 5_120
        prof = _spawn("profile", pw, 1, batch)
        combos = {"oneDNN on, 2 intra-op threads": ("1", "2"), "oneDNN off, 2 intra-op threads": ("0", "2"),
                  "oneDNN off, 1 intra-op thread": ("0", "1")}
        threads = {name: [] for name in combos}
        for _ in range(2):
            for name, (onednn, n) in combos.items():
                env = {"TF_ENABLE_ONEDNN_OPTS": onednn, "WORKBENCH_TF_THREADS": n}
                threads[name].append(_spawn("profile-base", pw, 1, batch, env=env)["fit, no callbacks"])
        results["profile"] = prof
        base = prof["fit, no callbacks"]
        print(f"\nwhere one epoch goes ({pw:,} windows, batch {batch}; seconds, median of 2 interleaved; "
              f"{prof['threads']}; load average {_load()}):")
        for name, sec in prof.items():
            if name != "threads":
                print(f"  {name:52} {sec:7.2f}  {sec / base:6.2f}x of fit")
        print("  fit, no callbacks, each in its own process (2 interleaved rounds):")
        for name, secs in threads.items():
            print(f"    {name:50} {statistics.median(secs):7.2f}")
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
