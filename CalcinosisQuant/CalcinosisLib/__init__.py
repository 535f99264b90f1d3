"""CalcinosisLib: the Slicer-free core shared by CalcinosisQuant and SpineCalcMap.

Everything that computes a number lives here (or in the hand/spine libraries
built on it); the Slicer modules and the command line only call into it.
"""

__version__ = "0.1.0"
