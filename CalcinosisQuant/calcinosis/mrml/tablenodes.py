"""Core :class:`~calcinosis.core.tables.Table` <-> ``vtkMRMLTableNode``.

Column types map to VTK arrays: ``int`` -> ``vtkIntArray`` (``vtkLongLongArray`` beyond
32 bits), ``double`` -> ``vtkDoubleArray`` (missing = NaN), ``string`` -> ``vtkStringArray``
(missing = empty).  A VTK integer array cannot hold a missing value, so an ``int`` column
with missing cells (e.g. counts of a level that was not assessed) becomes a
``vtkDoubleArray`` with NaN there and the column property ``valueType=int`` that brings it
back as ``int`` (the table view shows ``nan``, never a made-up 0).  Units go to
``SetColumnUnitLabel``, descriptions to ``SetColumnDescription``, titles to
``SetColumnTitle``; the table's name and description to the node's.
"""

from __future__ import annotations

import math

import numpy as np
import vtk
from vtk.util import numpy_support

from calcinosis.core.tables import Column, Table
from .scene import get_scene

VALUE_TYPE_PROPERTY = "valueType"
_INT32 = (np.iinfo(np.int32).min, np.iinfo(np.int32).max)


def _vtk_column(column: Column, values: list):
    if column.type == "string":
        arr = vtk.vtkStringArray()
        arr.SetNumberOfValues(len(values))
        for r, v in enumerate(values):
            arr.SetValue(r, "" if v is None else str(v))
        return arr, None
    if column.type == "int":
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            data = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            return numpy_support.numpy_to_vtk(data, deep=True, array_type=vtk.VTK_DOUBLE), "int"
        data = np.array([int(v) for v in values], dtype=np.int64)
        if data.size == 0 or (data.min() >= _INT32[0] and data.max() <= _INT32[1]):
            return numpy_support.numpy_to_vtk(data.astype(np.int32), deep=True, array_type=vtk.VTK_INT), None
        return numpy_support.numpy_to_vtk(data, deep=True, array_type=vtk.VTK_LONG_LONG), None
    data = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return numpy_support.numpy_to_vtk(data, deep=True, array_type=vtk.VTK_DOUBLE), None


def table_node_from_table(table: Table, scene=None, node=None, name: str | None = None):
    """A ``vtkMRMLTableNode`` with the table's typed columns, units, descriptions and titles.
    ``node``: replace the content of this node."""
    scene = get_scene(scene)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name or table.name or "table")
    elif name:
        node.SetName(name)
    was = node.StartModify()
    try:
        node.RemoveAllColumns()
        vt = node.GetTable()
        for col in table.columns:
            arr, value_type = _vtk_column(col, [r[col.name] for r in table.rows])
            arr.SetName(col.name)
            vt.AddColumn(arr)
        for col in table.columns:
            node.SetColumnUnitLabel(col.name, col.unit or "")
            node.SetColumnDescription(col.name, col.description or "")
            node.SetColumnTitle(col.name, col.title or col.name)
            if col.type == "int" and vt.GetColumnByName(col.name).GetDataType() == vtk.VTK_DOUBLE:
                node.SetColumnProperty(col.name, VALUE_TYPE_PROPERTY, "int")
        node.SetDescription(table.description or "")
        node.SetUseColumnTitleAsColumnHeader(False)
        vt.Modified()
        node.Modified()
    finally:
        node.EndModify(was)
    return node


def _column_type(arr) -> str:
    if isinstance(arr, vtk.vtkStringArray):
        return "string"
    if isinstance(arr, vtk.vtkDataArray):
        t = arr.GetDataType()
        if t in (vtk.VTK_FLOAT, vtk.VTK_DOUBLE):
            return "double"
        return "int"
    return "string"


def fill_table_node(table: Table, node=None, name: str | None = None, scene=None, locked: bool = True):
    """A table node showing ``table`` (``node`` refilled when given): column headers with
    their unit (``volume_mm3 [mm3]``), locked unless ``locked=False`` (a computed table:
    edits in a table view would not feed back)."""
    node = table_node_from_table(table, scene=scene, node=node, name=None if node is not None else name)
    node.SetUseColumnTitleAsColumnHeader(True)
    node.SetLocked(bool(locked))
    return node


def table_from_table_node(node) -> Table:
    """A core :class:`Table` from a table node (types from its arrays, ``valueType``
    column property honoured; NaN and empty strings become missing values)."""
    vt = node.GetTable()
    columns, data = [], []
    for c in range(vt.GetNumberOfColumns()):
        arr = vt.GetColumn(c)
        name = arr.GetName() or node.GetColumnName(c)
        ctype = _column_type(arr)
        if ctype == "double" and node.GetColumnProperty(name, VALUE_TYPE_PROPERTY) == "int":
            ctype = "int"
        title = node.GetColumnTitle(name)
        columns.append(Column(name, ctype, node.GetColumnUnitLabel(name) or "", node.GetColumnDescription(name) or "",
                              "" if title in ("", name) else title))
        n = arr.GetNumberOfTuples() if isinstance(arr, vtk.vtkDataArray) else arr.GetNumberOfValues()
        if isinstance(arr, vtk.vtkDataArray):
            if arr.GetNumberOfComponents() != 1:
                values = [" ".join(f"{v:g}" for v in arr.GetTuple(r)) for r in range(n)]
                columns[-1] = Column(name, "string", columns[-1].unit, columns[-1].description, columns[-1].title)
            else:
                a = numpy_support.vtk_to_numpy(arr)
                if ctype == "double":
                    values = [None if math.isnan(v) else float(v) for v in a.tolist()]
                elif np.issubdtype(a.dtype, np.floating):
                    values = [None if math.isnan(v) else int(v) for v in a.tolist()]
                else:
                    values = [int(v) for v in a.tolist()]
        elif isinstance(arr, vtk.vtkStringArray):
            values = [arr.GetValue(r) or None for r in range(n)]
        else:  # vtkVariantArray and others
            values = [str(arr.GetVariantValue(r).ToString()) or None for r in range(n)]
        data.append(values)
    table = Table(columns, name=node.GetName() or "", description=node.GetDescription() or "")
    nrows = max((len(v) for v in data), default=0)
    for r in range(nrows):
        table.rows.append({c.name: data[i][r] if r < len(data[i]) else None for i, c in enumerate(columns)})
    return table
