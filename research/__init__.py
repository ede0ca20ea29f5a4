"""Quant research workbench: data, features, models, strategies, backtests, risk, tracking.

The few entry points most work starts from are re-exported here::

    from research import load_prices, get_settings
"""

from research.config import get_settings
from research.data import close_matrix, load_prices

__all__ = ["load_prices", "close_matrix", "get_settings"]
__version__ = "0.1.0"
