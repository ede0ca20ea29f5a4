"""News speed and accuracy: ingest, read, score and build the point-in-time features.

Prints, in a scratch data folder: the first ``load_news`` of the sample universe from the
synthetic generator (generate, normalise, deduplicate, store, score), a second one (verified
read and scoring), the scorer's throughput, the news features on a symbol's whole history,
and the scorer's accuracy on the labelled headlines of the tests beside the majority class.

    nice -n 10 .venv/bin/python benchmarks/bench_news.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    os.environ["WORKBENCH_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-news-")
    import pandas as pd

    from research.data import load_prices
    from research.data.sources.sample import SAMPLE_UNIVERSE
    from research.features import feature_set
    from research.news import get_scorer, label, load_news

    symbols = list(SAMPLE_UNIVERSE)
    news, first = _timed(lambda: load_news(symbols))
    _, again = _timed(lambda: load_news(symbols))
    print(f"load_news({len(symbols)} symbols, synthetic, whole history): {len(news):,} items; "
          f"first {first:.2f} s (generate, normalise, store, score), again {again:.2f} s (verified read, score)")
    titles = news["title"].tolist()
    _, score = _timed(lambda: get_scorer().score(titles))
    print(f"scorer vader+finance: {len(titles) / score:,.0f} headlines/s")
    spx = load_prices("SPX")
    spx_news = news[news["symbol"] == "SPX"]
    feats, took = _timed(lambda: feature_set(spx, "sentiment", news=spx_news))
    print(f"feature_set(SPX, 'sentiment'): {len(feats):,} bars from {len(spx_news):,} items in {took * 1000:.0f} ms")
    labelled = pd.read_csv(ROOT / "tests" / "news" / "data" / "labelled_headlines.csv")
    truth = labelled["label"].to_numpy()
    for name in ("vader+finance", "vader"):
        acc = (label(get_scorer(name).score(labelled["headline"])) == truth).mean()
        print(f"accuracy {name}: {acc:.1%} on {len(labelled)} headlines")
    print(f"accuracy majority class: {labelled['label'].value_counts(normalize=True).max():.1%}")


if __name__ == "__main__":
    main()
