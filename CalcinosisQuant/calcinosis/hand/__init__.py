"""calcinosis.hand: hand calcinosis (radiograph, CT, MRI) - digits, joints, modality comparison.

Slicer-free; built on calcinosis.core.  What the CalcinosisQuant panel (and any script) calls:

* landmarks: :func:`.anatomy.expected_landmark_labels` (the panel's *Create and place*),
  :func:`.landmarks.landmarks_from_points` (from the bridge's ``points_from_markups``),
  :func:`.landmarks.read_landmarks`, :func:`.landmarks.markups_json_text`;
* *Detect*: :func:`.hand_pipeline.detect_lesions` (volume, modality, DetectParams, region,
  landmarks=...) -> :class:`.detect.Detection` whose ``lesions`` become the segmentation to
  edit (on radiographs the landmarks let :mod:`.xr` tell bone ends from deposits);
* *Measure*: :func:`.hand_pipeline.lesions_from_segmentation` (the edited segmentation)
  and :func:`.hand_pipeline.measure_hand` -> :class:`.hand_pipeline.HandResult` with
  ``lesions_table``, ``digits_table``, ``hand_table`` and segment names/colours;
* *Export*: :func:`.hand_pipeline.write_hand_outputs` (the files of ``calcinosis hand``);
* :mod:`.compare` (study 1 per-digit comparison), :mod:`.structural_form` (study 2 form),
  :mod:`.phantom_hand` (the synthetic patient with exact truth);
* :mod:`.slicer_logic`: the panel's steps on MRML nodes (Detect, Measure, Export, the
  landmark list, the structural form) - the one module here that needs Slicer or the
  ``slicer-core`` wheel (it uses the MRML bridge); import it explicitly.
"""
