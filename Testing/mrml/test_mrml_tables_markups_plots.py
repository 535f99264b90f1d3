"""Table nodes (typed columns, units, descriptions), markups point lists, plot charts."""

import math

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table

pytestmark = pytest.mark.mrml


def _example_table():
    t = Table([
        Column("lesion_id", "int", "", "Lesion number"),
        Column("volume_mm3", "double", "mm3", "Lesion volume", "Volume"),
        Column("digit", "string", "", "Digit the lesion is assigned to"),
        Column("count_anterior", "int", "calcifications", "Count (empty when the level was not assessed)"),
        Column("big_int", "int", "", "Needs 64 bits"),
    ], name="lesions", description="One row per lesion")
    t.append({"lesion_id": 1, "volume_mm3": 12.5, "digit": "index", "count_anterior": 3, "big_int": 2 ** 40})
    t.append({"lesion_id": 2, "volume_mm3": None, "digit": None, "count_anterior": None, "big_int": -5})
    t.append({"lesion_id": 3, "volume_mm3": 0.0, "digit": "thumb", "count_anterior": 0, "big_int": 7})
    return t


def test_table_node_types_units_descriptions(mrml_scene):
    import vtk
    from calcinosis import mrml

    t = _example_table()
    node = mrml.table_node_from_table(t)
    assert node.GetName() == "lesions" and node.GetDescription() == "One row per lesion"
    vt = node.GetTable()
    assert vt.GetNumberOfRows() == 3 and vt.GetNumberOfColumns() == 5
    assert isinstance(vt.GetColumnByName("lesion_id"), vtk.vtkIntArray)
    assert isinstance(vt.GetColumnByName("volume_mm3"), vtk.vtkDoubleArray)
    assert isinstance(vt.GetColumnByName("digit"), vtk.vtkStringArray)
    assert vt.GetColumnByName("big_int").GetDataType() == vtk.VTK_LONG_LONG
    assert vt.GetColumnByName("big_int").GetValue(0) == 2 ** 40
    # an int column with a missing value: NaN there, never a made-up 0
    assert math.isnan(vt.GetColumnByName("count_anterior").GetValue(1))
    assert node.GetColumnProperty("count_anterior", "valueType") == "int"
    assert math.isnan(vt.GetColumnByName("volume_mm3").GetValue(1))
    assert node.GetColumnUnitLabel("volume_mm3") == "mm3"
    assert node.GetColumnUnitLabel("count_anterior") == "calcifications"
    assert node.GetColumnDescription("digit") == "Digit the lesion is assigned to"
    assert node.GetColumnTitle("volume_mm3") == "Volume"
    assert node.GetColumnTitle("lesion_id") == "lesion_id"


def test_table_round_trip(mrml_scene):
    from calcinosis import mrml

    t = _example_table()
    back = mrml.table_from_table_node(mrml.table_node_from_table(t))
    assert back.columns == t.columns
    assert back.rows == t.rows
    assert back.name == t.name and back.description == t.description
    assert back.to_csv_text() == t.to_csv_text()


def test_refilling_a_node_replaces_its_columns(mrml_scene):
    from calcinosis import mrml

    node = mrml.table_node_from_table(_example_table())
    small = Table([Column("x", "double", "mm", "an x")], [{"x": 1.0}], name="small")
    assert mrml.table_node_from_table(small, node=node) is node
    assert node.GetTable().GetNumberOfColumns() == 1
    assert mrml.table_from_table_node(node).rows == [{"x": 1.0}]


def test_core_csv_and_schema_load_in_slicer_storage_node(mrml_scene, tmp_path):
    """lesions.csv + lesions.schema.csv written by the core load through Slicer's table
    storage node with types, units and descriptions; missing doubles stay missing (NaN)."""
    import slicer
    import vtk
    from calcinosis import mrml

    t = _example_table()
    csv_path, _schema = t.write_csv(tmp_path / "lesions.csv")
    node = mrml_scene.AddNewNodeByClass("vtkMRMLTableNode", "loaded")
    storage = slicer.vtkMRMLTableStorageNode()
    mrml_scene.AddNode(storage)
    storage.SetFileName(str(csv_path))
    assert storage.ReadData(node) == 1
    vt = node.GetTable()
    assert vt.GetColumnByName("lesion_id").GetDataType() == vtk.VTK_INT
    assert vt.GetColumnByName("volume_mm3").GetDataType() == vtk.VTK_DOUBLE
    assert isinstance(vt.GetColumnByName("digit"), vtk.vtkStringArray)
    assert node.GetColumnUnitLabel("volume_mm3") == "mm3"
    assert node.GetColumnDescription("volume_mm3") == "Lesion volume"
    assert node.GetColumnTitle("volume_mm3") == "Volume"
    assert vt.GetColumnByName("volume_mm3").GetValue(0) == 12.5
    assert math.isnan(vt.GetColumnByName("volume_mm3").GetValue(1))  # the schema's nullValue=nan
    back = mrml.table_from_table_node(node)
    assert back.column("volume_mm3") == [12.5, None, 0.0]
    assert back.column("digit") == ["index", None, "thumb"]
    # known limit of Slicer's reader: an empty cell of an int column reads as 0
    assert back.column("count_anterior") == [3, 0, 0]


def test_points_round_trip_with_unplaced(mrml_scene):
    import slicer
    from calcinosis import mrml

    expected = [("thumb MCP", [10.0, -20.5, 30.25]), ("thumb IP", None), ("index PIP", (1.0, 2.0, 3.0)),
                ("index tip", None)]
    node = mrml.markups_from_points(expected, "hand landmarks")
    assert node.IsA("vtkMRMLMarkupsFiducialNode") and node.GetName() == "hand landmarks"
    assert node.GetNumberOfControlPoints() == 4
    assert node.GetNthControlPointPositionStatus(1) == slicer.vtkMRMLMarkupsNode.PositionUndefined
    assert node.GetNthControlPointPositionStatus(0) == slicer.vtkMRMLMarkupsNode.PositionDefined
    got = mrml.points_from_markups(node)
    assert [g[0] for g in got] == [e[0] for e in expected]
    for (_, p), (_, e) in zip(got, expected):
        if e is None:
            assert p is None
        else:
            assert np.allclose(p, e, atol=1e-9)
    # the user places the next point: it becomes defined
    node.SetNthControlPointPositionWorld(1, 5.0, 6.0, 7.0)
    assert np.allclose(mrml.points_from_markups(node)[1][1], (5.0, 6.0, 7.0))


def test_points_are_world_coordinates(mrml_scene):
    import vtk
    from calcinosis import mrml

    node = mrml.markups_from_points([("a", (1.0, 2.0, 3.0))], "pts")
    t = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    m = vtk.vtkMatrix4x4()
    m.SetElement(2, 3, 10.0)
    t.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(t.GetID())
    assert np.allclose(mrml.points_from_markups(node)[0][1], (1.0, 2.0, 13.0))


def test_bad_point_is_refused(mrml_scene):
    from calcinosis import mrml

    with pytest.raises(InputError, match="'tip'"):
        mrml.markups_from_points([("tip", (1.0, float("nan"), 2.0))], "pts")


@pytest.mark.parametrize("chart_type", ["bar", "line", "scatter"])
def test_plot_chart_from_table(mrml_scene, chart_type):
    import slicer
    from calcinosis import mrml

    t = _example_table()
    t.add_column(Column("other_volume_mm3", "double", "mm3", "another volume"), [1.0, 2.0, 3.0])
    tnode = mrml.table_node_from_table(t)
    x = "lesion_id" if chart_type == "scatter" else "digit"
    chart = mrml.plot_chart_from_table(tnode, x, ["volume_mm3", "other_volume_mm3"], "Lesion size", chart_type=chart_type)
    assert chart.IsA("vtkMRMLPlotChartNode") and chart.GetTitle() == "Lesion size"
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetTableNode() is tnode
    assert series.GetYColumnName() == "volume_mm3"
    want = {"bar": slicer.vtkMRMLPlotSeriesNode.PlotTypeBar, "line": slicer.vtkMRMLPlotSeriesNode.PlotTypeLine,
            "scatter": slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter}[chart_type]
    assert series.GetPlotType() == want
    if chart_type == "scatter":
        assert series.GetXColumnName() == "lesion_id"
    else:
        assert series.GetLabelColumnName() == "digit"
    assert chart.GetYAxisTitle() == "mm3"
    assert "lesion_id" in chart.GetXAxisTitle() or "digit" in chart.GetXAxisTitle()
    assert chart.GetNthPlotSeriesNode(1).GetColor() != series.GetColor()


def test_plot_chart_errors(mrml_scene):
    from calcinosis import mrml

    tnode = mrml.table_node_from_table(_example_table())
    with pytest.raises(InputError, match="no column 'nope'"):
        mrml.plot_chart_from_table(tnode, "lesion_id", ["nope"], "x")
    with pytest.raises(InputError, match="not numeric"):
        mrml.plot_chart_from_table(tnode, "lesion_id", ["digit"], "x")
    with pytest.raises(InputError, match="scatter chart needs a numeric X"):
        mrml.plot_chart_from_table(tnode, "digit", ["volume_mm3"], "x", chart_type="scatter")
    with pytest.raises(InputError, match="chart type"):
        mrml.plot_chart_from_table(tnode, "digit", ["volume_mm3"], "x", chart_type="pie")
