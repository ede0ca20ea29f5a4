"""A second process for the retry-after test: waits for "go", then fetches from CoinGecko.

Usage: ``python retry_after_worker.py <api base url> <coin id>``. The source uses its default
guard (the machine-wide budget and retry-after memory under ``WORKBENCH_DATA_DIR``).
"""

from __future__ import annotations

import sys

import pandas as pd

from research.data.sources.coingecko import CoinGeckoSource


def main() -> None:
    base, coin = sys.argv[1], sys.argv[2]
    source = CoinGeckoSource(demo_api_key="k")
    source.client.api_base_url = base
    print("ready", flush=True)
    sys.stdin.readline()
    frame = source.fetch(coin, pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=5), None)
    print(f"rows {len(frame)}", flush=True)


if __name__ == "__main__":
    main()
