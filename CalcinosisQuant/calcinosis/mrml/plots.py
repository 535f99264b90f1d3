"""Plot charts from table nodes (inside Slicer, figures are plot chart nodes)."""

from __future__ import annotations

from typing import Sequence

import slicer
import vtk

from calcinosis.core.errors import InputError
from .scene import get_scene

CHART_TYPES = ("bar", "line", "scatter")

#: Colour-blind-safe series colours (Okabe-Ito).
SERIES_COLORS = ((0.0, 0.45, 0.70), (0.90, 0.62, 0.0), (0.0, 0.62, 0.45), (0.80, 0.40, 0.0),
                 (0.34, 0.71, 0.91), (0.80, 0.47, 0.65), (0.94, 0.89, 0.26), (0.0, 0.0, 0.0))


def _axis_title(table_node, column: str) -> str:
    unit = table_node.GetColumnUnitLabel(column)
    return f"{column} ({unit})" if unit else column


def chart_table_node(chart_node):
    """The table node a chart's first series plots (None without one): what a refill reuses."""
    if chart_node is None:
        return None
    for k in range(chart_node.GetNumberOfPlotSeriesNodes()):
        series = chart_node.GetNthPlotSeriesNode(k)
        if series is not None and series.GetTableNode() is not None:
            return series.GetTableNode()
    return None


def plot_chart_from_table(table_node, x_column: str, y_columns: Sequence[str] | str, title: str, scene=None,
                          chart_type: str = "bar", chart_node=None):
    """A ``vtkMRMLPlotChartNode`` with one series per Y column of ``table_node``.

    ``bar``/``line``: one bar/point per row, equally spaced, labelled by ``x_column``
    (any type); ``scatter``: ``x_column`` (numeric) gives the X coordinates.  With
    ``chart_node`` the chart is refilled: its earlier series are removed from the scene."""
    scene = get_scene(scene)
    if chart_type not in CHART_TYPES:
        raise InputError(f"chart type must be one of {', '.join(CHART_TYPES)}, got {chart_type!r}")
    if isinstance(y_columns, str):
        y_columns = [y_columns]
    table = table_node.GetTable()
    for c in [x_column, *y_columns]:
        if table.GetColumnByName(c) is None:
            raise InputError(f"table '{table_node.GetName()}' has no column '{c}'")
    for c in y_columns:
        if not isinstance(table.GetColumnByName(c), vtk.vtkDataArray):
            raise InputError(f"column '{c}' of table '{table_node.GetName()}' is not numeric; it cannot be plotted")
    if chart_type == "scatter" and not isinstance(table.GetColumnByName(x_column), vtk.vtkDataArray):
        raise InputError(f"a scatter chart needs a numeric X column; '{x_column}' is not")
    if chart_node is None:
        chart_node = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", title)
    else:   # refill: the chart's series are replaced, and removed from the scene
        old = [chart_node.GetNthPlotSeriesNode(k) for k in range(chart_node.GetNumberOfPlotSeriesNodes())]
        chart_node.RemoveAllPlotSeriesNodeIDs()
        for series in old:
            if series is not None and series.GetScene() is scene:
                scene.RemoveNode(series)
    plot_type = {"bar": slicer.vtkMRMLPlotSeriesNode.PlotTypeBar, "line": slicer.vtkMRMLPlotSeriesNode.PlotTypeLine,
                 "scatter": slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter}[chart_type]
    for n, y in enumerate(y_columns):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{title}: {y}")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetPlotType(plot_type)
        if chart_type == "scatter":
            series.SetXColumnName(x_column)
        else:
            series.SetLabelColumnName(x_column)
        series.SetYColumnName(y)
        series.SetColor(*SERIES_COLORS[n % len(SERIES_COLORS)])
        if chart_type == "scatter":  # points, not a polyline through them
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
        chart_node.AddAndObservePlotSeriesNodeID(series.GetID())
    chart_node.SetTitle(title)
    chart_node.SetXAxisTitle(_axis_title(table_node, x_column))
    units = {table_node.GetColumnUnitLabel(y) for y in y_columns}
    chart_node.SetYAxisTitle(_axis_title(table_node, y_columns[0]) if len(y_columns) == 1
                             else (next(iter(units)) if len(units) == 1 else ""))
    chart_node.SetLegendVisibility(len(y_columns) > 1)
    return chart_node
