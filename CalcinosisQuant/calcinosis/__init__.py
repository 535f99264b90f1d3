"""calcinosis: imaging calcinosis in systemic sclerosis - the code behind the CalcinosisQuant
and SpineCalcMap Slicer modules and the ``calcinosis`` command line.

One package, one sub-package per layer or pipeline; imports go one way only (checked by
``Testing/core/test_layers.py``)::

    core  <-  hand, spine  <-  tasks  <-  cohort  <-  cli
    core  <-  mrml (the MRML bridge and the panels' sessions)  <-  the two module files

* :mod:`calcinosis.core` - geometry, image I/O, the lesion engine, measurement, tables,
  all-or-nothing output, provenance, progress (numpy, scipy, SimpleITK, pydicom only);
* :mod:`calcinosis.hand` - hand calcinosis on radiographs, CT and MRI;
* :mod:`calcinosis.spine` - spine CT calcifications on levels and segments;
* :mod:`calcinosis.cohort` - batch over a manifest, the studies' statistics, reports;
* :mod:`calcinosis.cli` - the ``calcinosis`` command line;
* :mod:`calcinosis.mrml` - Slicer nodes <-> core objects (imports ``slicer``/``vtk``; runs
  inside Slicer and headless on the ``slicer-core`` wheel).

Nothing is imported here: ``import calcinosis`` stays cheap for the command line.
"""

__version__ = "0.1.0"
