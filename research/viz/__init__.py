"""Drawing: plotly figures and ipywidgets panels over computed results.

``research.viz`` may import any part of the workbench; nothing in the package imports it, and
importing it changes nothing elsewhere (a risk report is drawn by ``viz.risk.tearsheet_figures``).

Modules
-------
risk
    Tear-sheet figures of a :class:`research.risk.report.RiskReport`.
panels
    Dashboard panels.
"""

from research.viz import risk
from research.viz.risk import tearsheet_figures

__all__ = ["risk", "tearsheet_figures"]
