"""One parameter source: the panels' parameter nodes, the command line and the docs table
all follow ``calcinosis.hand.params`` / ``calcinosis.spine.params``.

The module files need Slicer to import, so their parameter-node classes are read from the
source; the mapping between panel names and parameters is
``calcinosis.mrml.hand_session.PANEL_*_FIELDS`` (imported without Slicer: the session
module imports ``slicer`` only through the bridge, which slicer-core provides)."""

from __future__ import annotations

import ast
import types
from dataclasses import fields
from pathlib import Path

import pytest

from calcinosis import tasks
from calcinosis.hand import params as hand_params
from calcinosis.spine import params as spine_params

REPO = Path(__file__).resolve().parents[2]


def parameter_node_fields(module_file: Path) -> dict[str, str]:
    """field name -> the source of its default, for the @parameterNodeWrapper class."""
    tree = ast.parse(module_file.read_text(encoding="utf-8"))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        if any("parameterNodeWrapper" in ast.unparse(d) for d in cls.decorator_list):
            return {s.target.id: (ast.unparse(s.value) if s.value is not None else "")
                    for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    raise AssertionError(f"{module_file.name}: no parameterNodeWrapper class")


@pytest.fixture(scope="module")
def hand_session():
    pytest.importorskip("slicer", reason="slicer-core (real MRML) is a test extra")
    from calcinosis.mrml import hand_session
    return hand_session


def test_hand_panel_fields_are_the_parameters(hand_session):
    node = parameter_node_fields(REPO / "CalcinosisQuant" / "CalcinosisQuant.py")
    for mapping, defaults, cls in ((hand_session.PANEL_DETECT_FIELDS, "hand.DETECT_DEFAULTS", hand_params.DetectParams),
                                   (hand_session.PANEL_ASSIGN_FIELDS, "hand.ASSIGN_DEFAULTS", hand_params.AssignParams)):
        names = {f.name for f in fields(cls)}
        for panel_name, param in mapping.items():
            assert param in names, f"{panel_name} maps to {param}, which {cls.__name__} does not have"
            assert node.get(panel_name) == f"{defaults}.{param}", \
                f"parameter node field {panel_name} must default to {defaults}.{param} (has {node.get(panel_name)!r})"
        # every panel field that takes a parameter's default is in the mapping
        for panel_name, default in node.items():
            if default.startswith(defaults + "."):
                assert panel_name in mapping, f"{panel_name} ({default}) is not in the panel mapping"


def test_hand_panel_values_reach_the_parameters(hand_session):
    node = types.SimpleNamespace(customThreshold=True, threshold=150.0, minSize=2.0, connectivity="full",
                                 minSlices=2, boundary="threshold", removeBone=False, minConfidence=0.3,
                                 maxRayDistance=12.0,
                                 jointRadius=4.0, periarticularDistance=5.0, wristReach=20.0, sideReach=50.0,
                                 wristWidth=22.0, landmarkMargin=10.0, thumbIpZone="PIP")
    d = hand_session.detect_params_from_node(node)
    assert (d.threshold, d.min_size, d.connectivity, d.min_slices, d.boundary, d.exclude_bone,
            d.xr_min_confidence) == (150.0, 2.0, "full", 2, "threshold", False, 0.3)
    a = hand_session.assign_params_from_node(node)
    assert (a.max_ray_distance_mm, a.joint_radius_mm, a.periarticular_mm, a.wrist_reach_mm, a.side_reach_mm,
            a.wrist_width_mm, a.landmark_margin_mm, a.thumb_ip_zone) == (12.0, 4.0, 5.0, 20.0, 50.0, 22.0, 10.0, "PIP")
    node.customThreshold = False
    assert hand_session.detect_params_from_node(node).threshold is None
    node.jointRadius = -1.0
    with pytest.raises(Exception, match="--joint-radius"):
        hand_session.assign_params_from_node(node)
    node.minConfidence = 1.5
    with pytest.raises(Exception, match="--min-confidence"):
        hand_session.detect_params_from_node(node)


def test_spine_panel_fields_are_the_parameters():
    """The spine panel binds its parameter node to SpineParams' own names and defaults."""
    node = parameter_node_fields(REPO / "SpineCalcMap" / "SpineCalcMap.py")
    names = [f.name for f in fields(spine_params.SpineParams)]
    missing = [n for n in names if n not in node]
    assert missing == [], f"SpineParams fields without a parameter-node field: {missing}"
    for n in names:
        assert node[n] == f"SPINE_DEFAULTS.{n}", f"spine parameter node field {n} defaults to {node[n]!r}"


@pytest.mark.parametrize("task,cls", [("hand", hand_params.DetectParams), ("hand", hand_params.AssignParams),
                                      ("spine", spine_params.SpineParams)])
def test_command_line_defaults_are_the_parameters(task, cls):
    parser = tasks.parser_for(task)
    by_option = {o: a for a in parser._actions for o in a.option_strings}  # noqa: SLF001 - our own parser
    module = hand_params if task == "hand" else spine_params
    for f in fields(cls):
        option = module.OPTIONS.get(f.name)
        if option is None:
            continue
        action = by_option[option]
        if option.startswith("--no-") or option == "--keep-bone":     # switches that turn a parameter off
            assert f.default is True and action.default in (False, True)
            continue
        assert action.default == f.default, f"{option} defaults to {action.default!r}, {f.name} to {f.default!r}"


def test_parameters_page_is_current():
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_cli_docs", REPO / "Utilities" / "make_cli_docs.py")
    mod = importlib.util.module_from_spec(spec)   # the one test that needs the docs tool itself
    spec.loader.exec_module(mod)
    page = (REPO / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert page == mod.parameters_markdown(), "docs/parameters.md is out of date: run python Utilities/make_cli_docs.py"
