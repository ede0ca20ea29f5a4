"""The fused simulation's shortcuts of vectorbt's tolerance arithmetic decide exactly as the originals."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from research.backtest.kernels import add_nb, is_close_nb
from research.backtest.simulate import _add

ANY = st.floats(allow_nan=True, allow_infinity=True)
SMALL = st.floats(min_value=-1e-6, max_value=1e-6)


def _bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def _same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or _bits(x) == _bits(y)


@given(a=ANY, b=ANY)
@example(a=0.0, b=-0.0)
@example(a=-0.0, b=0.0)
@example(a=1e-13, b=0.0)
@example(a=math.inf, b=-math.inf)
def test_add_equals_vectorbt_add(a: float, b: float) -> None:
    assert _same(_add(a, b), add_nb(a, b))


@given(a=st.floats(min_value=-1e12, max_value=1e12), rel=SMALL, tiny=st.floats(min_value=-1e-11, max_value=1e-11))
@example(a=1.0, rel=1e-9, tiny=0.0)
@example(a=1.0, rel=-1e-9, tiny=0.0)
@example(a=1e-3, rel=0.0, tiny=1e-12)
def test_add_near_cancellation(a: float, rel: float, tiny: float) -> None:
    """Operands that nearly cancel (the tolerances' edges), where the shortcut must hand over."""
    b = -a * (1.0 + rel) + tiny
    assert _same(_add(a, b), add_nb(a, b))


@given(x=ANY | SMALL)
@example(x=1e-12)
@example(x=-1e-12)
@example(x=np.nextafter(1e-12, 1.0))
@example(x=-0.0)
def test_close_to_zero_is_one_comparison(x: float) -> None:
    """``abs(x) <= 1e-12`` (the order arithmetic's form) is vectorbt's ``is_close(x, 0)``."""
    assert (abs(x) <= 1e-12) == is_close_nb(x, 0.0)
    assert (x < -1e-12) == (not is_close_nb(x, 0.0) and x < 0.0)  # _is_less(x, 0)
    assert (x <= 1e-12) == (is_close_nb(x, 0.0) or (not is_close_nb(x, 0.0) and x < 0.0))
    assert (x <= 1e-12) == (x <= 0 or is_close_nb(x, 0.0))  # a trade's size used up
    assert (x > 1e-12) == (x > 0 and not is_close_nb(x, 0.0))
