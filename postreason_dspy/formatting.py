"""How every table, report and summary line prints a figure, so that the same p-value or accuracy reads
the same in `postreason report`, a tune report and a script's table.

Missing values (None) print as "-". Accuracies and shares are percentages with one decimal, differences
of accuracies are percentage points, intervals are printed in percent, and p-values keep three significant
digits (scientific notation below 0.001, where "0.000123" would hide the order of magnitude).
"""

from __future__ import annotations

from collections.abc import Sequence


def pct(value: float | None, signed: bool = False) -> str:
    """A share as a percentage: 0.4567 -> "45.7%" ("+45.7%" when `signed`)."""
    if value is None:
        return "-"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def interval(bounds: Sequence[float] | None, signed: bool = False) -> str:
    """An interval of shares, in percent: (0.1, 0.25) -> "[10.0, 25.0]"."""
    if bounds is None:
        return "-"
    low, high = bounds
    form = "{:+.1f}" if signed else "{:.1f}"
    return f"[{form.format(100 * low)}, {form.format(100 * high)}]"


def points(value: float) -> str:
    """A difference of accuracies, in percentage points."""
    return f"{100 * value:+.1f} pp"


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(value: float | None) -> str:
    """A ratio of costs (tokens, latency): 1.5 -> "1.50x"."""
    return "-" if value is None else f"{value:.2f}x"


def p_value(value: float | None) -> str:
    """A p-value: three significant digits, scientific notation below 0.001."""
    if value is None:
        return "-"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"

