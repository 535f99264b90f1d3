"""The MRML bridge: Slicer nodes <-> core objects.

Runs inside 3D Slicer and headless on the ``slicer-core`` wheel (real MRML, no Qt).
Everywhere ``scene=None`` means ``slicer.mrmlScene``.

* :func:`headless_scene` - ``slicer.mrmlScene`` in Slicer; elsewhere a fresh scene with the
  Colors, Volumes, Segmentations, Markups, Tables, Plots and SubjectHierarchy logics
  registered (and ``slicer.mrmlScene`` set).  :func:`close_headless_scene` releases it.
* volumes: :func:`volume_from_node`, :func:`node_from_volume`, :func:`node_geometry`.
* segmentations: :func:`segmentation_from_lesions` (fast shared-layer path),
  :func:`label_image_from_segmentation`, :func:`save_segmentation`, :func:`load_segmentation`.
* tables: :func:`table_node_from_table`, :func:`table_from_table_node`, :func:`fill_table_node`.
* markups: :func:`points_from_markups`, :func:`markups_from_points`.
* plots: :func:`plot_chart_from_table` (also refills a chart), :func:`chart_table_node`.
* views: :func:`center_views_on`.
* :func:`vtk_messages` - capture VTK console messages around noisy calls.

The GUI modules' logic lives in :mod:`calcinosis.mrml.workflow` (import it explicitly).
"""

from .markups import markups_from_points, points_from_markups
from .plots import chart_table_node, plot_chart_from_table
from .scene import close_headless_scene, get_scene, headless_scene, in_slicer, module_logic
from .segmentations import label_image_from_segmentation, load_segmentation, save_segmentation, segmentation_from_lesions
from .tablenodes import fill_table_node, table_from_table_node, table_node_from_table
from .volumes import node_from_volume, node_geometry, volume_from_node
from .views import center_views_on
from .vtklog import vtk_messages

__all__ = [
    "headless_scene", "close_headless_scene", "get_scene", "in_slicer", "module_logic",
    "volume_from_node", "node_from_volume", "node_geometry",
    "segmentation_from_lesions", "label_image_from_segmentation", "save_segmentation", "load_segmentation",
    "table_node_from_table", "table_from_table_node", "fill_table_node",
    "points_from_markups", "markups_from_points",
    "plot_chart_from_table", "chart_table_node", "center_views_on", "vtk_messages",
]
