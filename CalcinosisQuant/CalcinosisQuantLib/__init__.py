"""CalcinosisQuantLib: hand calcinosis (radiograph, CT, MRI) - digits, joints, modality comparison.

Slicer-free; built on CalcinosisLib.
"""
