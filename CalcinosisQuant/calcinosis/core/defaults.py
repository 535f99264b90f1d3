"""Choices and defaults shared by the pipelines and shown in the command line's help.

Kept free of numpy and scipy so that ``calcinosis COMMAND --help`` starts fast.
"""

CONNECTIVITIES = ("face", "full")     # voxel neighbourhoods: face = 6 (3D) / 4 (2D), as Slicer's Islands
DEFAULT_CT_THRESHOLD_HU = 130.0       # Agatston's calcium threshold
