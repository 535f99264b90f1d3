"""calcinosis.spine: spine CT calcifications mapped to disco-vertebral levels and segments.

Slicer-free (numpy, scipy, SimpleITK; matplotlib only inside :mod:`.chart`); built on
calcinosis.core (shipped inside the CalcinosisQuant module folder).  The command line
(``calcinosis spine``) and the Slicer panel call the same functions:

Map (CT + vertebrae -> calcifications on levels, segments, sub-sites, patterns)
    ``vertebrae.spine_labels(volume, label_image=None, points=None, convention="auto",
    aorta_mask=None) -> SpineLabels`` - any vertebra input (label map in the
    TotalSegmentator / TotalSpineSeg / VerSe convention, a segmentation whose segment
    names carry the vertebra, or one point per vertebral body); also
    ``vertebrae.load_spine_labels(volume, vertebrae=path | points=path, ...)`` from files.

    ``pipeline.map_spine(volume, labels, params=SpineParams(), overrides=None,
    progress=None) -> SpineResult``; ``pipeline.run_spine(ct_path, vertebrae=...,
    points=..., aorta=..., overrides=csv, params=...)`` loads the files first.

``SpineResult``
    ``table`` (lesions.csv), ``levels`` (levels.csv), ``patient`` (patient.csv),
    ``vertebrae_table()``, ``lesions`` (a ``LesionSet`` on the box around the spine, for
    ``mrml.segmentation_from_lesions``), ``segment_names()``, ``segment_colors()``
    (coloured by segment), ``full_grid_labels()``, ``assessed``, ``warnings``,
    ``stats`` (rejections by reason), ``frame`` (the spine frame), ``auto_rows`` (before
    reader overrides), ``overrides``/``applied`` (the reader's decisions and their record).

Reader corrections
    ``pipeline.apply_reader_overrides(result, overrides) -> SpineResult`` (tables only,
    nothing recomputed); ``overrides.overrides_from_edits(shown_rows, edited_rows,
    previous)`` (what the reader changed in the lesion table -> the complete override
    list); ``overrides.read_overrides(csv)``, ``overrides.overrides_table(list)``,
    ``overrides.record_table(applied)``.

Export
    ``pipeline.write_spine_outputs(outdir, result, force=False, ...)`` - the command
    line's result folder; ``chart.draw_level_chart(levels_table, png)``.

Parameters
    ``params.SpineParams`` (every threshold, recorded in provenance) and
    ``SpineParams.describe()`` (name -> help text).

Slicer panel (MRML nodes; imports ``slicer``, runs headless on slicer-core)
    ``slicer_logic.SpineSession`` - ``map(ct_node, vertebrae_node, params, aorta_node,
    aorta_segment_id)`` (segmentation, table and chart nodes), ``review_rows()``,
    ``stage(...)`` / ``apply_corrections()`` (reader corrections as overrides),
    ``load_overrides(csv)``, ``jump_to(...)``, ``export(outdir)``;
    ``slicer_logic.run_totalsegmentator(ct_node)`` (the TotalSegmentator extension).

Phantom
    ``phantom.make_spine_phantom(coverage, spacing, size_xy, seed, convention, ...) ->
    RenderedPhantom`` (CT, labels, truth table, truth voxels).
"""
