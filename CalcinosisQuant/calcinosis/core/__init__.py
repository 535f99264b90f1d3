"""calcinosis.core: the Slicer-free core shared by the hand and spine pipelines.

Geometry (the only place LPS and RAS meet), image I/O, the lesion engine (candidates,
splitting, connected components), measurement in one pass over a label image, tables with
units in the column names, all-or-nothing output folders, provenance, progress and threads.
numpy, scipy, SimpleITK and pydicom only (all bundled with 3D Slicer).
"""
