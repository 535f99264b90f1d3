"""SpineCalcMapLib: spine CT calcifications mapped to disco-vertebral levels and segments.

Slicer-free; built on CalcinosisLib (shipped inside the CalcinosisQuant module folder).
"""
