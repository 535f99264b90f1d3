"""The ``calcinosis`` command line: the same pipelines as the Slicer modules, for batch work."""
