"""The Segment Editor effect *Calcinosis* (one-click deposit outlines), registered at startup by
the CalcinosisQuant module (``CalcinosisQuant.registerEditorEffect``)."""

from .SegmentEditorEffect import EFFECT_NAME, SegmentEditorEffect  # noqa: F401
