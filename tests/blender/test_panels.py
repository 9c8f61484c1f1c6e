"""Panels can only be drawn with a window; here their draw code runs against a recording layout
that checks every property and operator it names exists on the real registered RNA."""
import warnings

import bpy
import pytest

from posebridge.panels import CLASSES as PANEL_CLASSES


class RecordingLayout:
    def __init__(self, seen):
        self.seen = seen

    def _child(self, *_args, **_kwargs):
        return self

    row = column = box = split = _child

    def prop(self, data, name, **_kwargs):
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self.seen.append(name)

    def prop_search(self, data, name, search_data, search_name, **_kwargs):
        self.prop(data, name)
        assert search_name in search_data.bl_rna.properties

    def operator(self, idname, **_kwargs):
        module, name = idname.split(".")
        assert hasattr(bpy.types, f"{module.upper()}_OT_{name}"), f"no operator {idname}"
        self.seen.append(idname)

    def template_list(self, list_type, _list_id, data, name, active_data, active_name, **_kwargs):
        assert hasattr(bpy.types, list_type) and name in data.bl_rna.properties
        assert active_name in active_data.bl_rna.properties

    def panel(self, idname, **kwargs):
        """A collapsible layout panel (Blender 4.1+): (header, body), drawn open so its body is
        checked too."""
        parameters = bpy.types.UILayout.bl_rna.functions["panel"].parameters
        assert all(name in parameters for name in kwargs), kwargs
        self.seen.append(idname)
        return self, self

    def label(self, text="", **_kwargs):
        self.seen.append(("label", text))

    def template_icon(self, **_kwargs):
        pass


@pytest.fixture
def scene(registered_scene):
    registered_scene.posebridge.character_index = list(registered_scene.objects).index(
        registered_scene.objects["DemoCharacter"])
    return registered_scene


def draw_all(seen):
    for cls in PANEL_CLASSES:
        if issubclass(cls, bpy.types.Panel):
            panel = type("Drawn", (), {"layout": RecordingLayout(seen)})()
            if not hasattr(cls, "poll") or cls.poll(bpy.context):
                cls.draw(panel, bpy.context)


def test_every_panel_names_real_properties_and_operators(scene):
    seen = []
    draw_all(seen)
    assert "posebridge.render_pose_maps" in seen and "posebridge.import_pose" in seen
    assert "keypoints" in seen and "line_widths" in seen


def test_panels_show_the_optional_settings(scene):
    settings = scene.posebridge
    settings.use_scene_frames = settings.use_scene_resolution = False
    importer = settings.importer
    importer.use_canvas, importer.person, importer.use_scene_start = True, "PIXEL", False
    scene.objects["DemoCharacter"].posebridge.preset = "CUSTOM"
    bpy.ops.posebridge.custom_map_from_preset()
    seen = []
    draw_all(seen)
    for name in ("frame_start", "resolution_y", "canvas_x", "person_y", "start_frame", "anchor",
                 "custom_head_bone", "posebridge.custom_map_add"):
        assert name in seen, name


def test_generate_panel_draws_backend_settings_with_and_without_preferences(scene):
    seen = []
    draw_all(seen)  # the add-on loaded by a script: no preferences entry, defaults shown
    for name in ("prompt", "negative", "seed", "steps", "pose_scale", "depth_scale", "batch", "overwrite",
                 "posebridge.generate", "posebridge.start_backend", "posebridge.export_video",
                 "posebridge.compare_sheet"):
        assert name in seen, name
    assert "backend_url" not in seen
    addon = bpy.context.preferences.addons.get("posebridge") or bpy.context.preferences.addons.new()
    addon.module = "posebridge"
    seen = []
    draw_all(seen)
    assert "backend_url" in seen and "token" in seen


def test_generate_panel_video_settings_and_their_defaults(scene):
    """Issue 9's settings: the pipeline choice, AnimateDiff's windows and segments, the identity
    reference; the panel draws them (in its Identity Reference and Advanced sub-panels)."""
    settings = scene.posebridge.generate
    props = settings.bl_rna.properties
    assert settings.pipeline == "AUTO"
    # Stable numbers: a saved .blend keeps the number, so these must never change.
    assert [(item.identifier, item.value) for item in props["pipeline"].enum_items] == [
        ("AUTO", 0), ("ANIMATEDIFF", 1), ("FRAMES", 2), ("WAN_VACE", 3)]
    assert (settings.context_length, settings.context_stride, settings.segment) == (16, 4, 0)
    assert (props["context_length"].hard_min, props["context_length"].hard_max) == (8, 32)
    assert settings.reference == "" and props["reference"].subtype == "FILE_PATH"
    assert settings.identity_scale == pytest.approx(0.6)
    assert (props["identity_scale"].hard_min, props["identity_scale"].hard_max) == (0.0, 2.0)
    assert "48: running in the rain" in props["prompt"].description  # prompt travel is told
    seen = []
    draw_all(seen)
    for name in ("pipeline", "reference", "identity_scale", "context_length", "context_stride", "segment",
                 "batch", "POSEBRIDGE_PT_generate_identity", "POSEBRIDGE_PT_generate_advanced"):
        assert name in seen, name


def test_path_settings_take_blend_relative_paths_without_warnings(scene):
    """// (the .blend's folder) is a normal value for every path setting: Blender 4.5+ warns on
    each one unless the property says it takes them."""
    settings = scene.posebridge
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings.output_dir = "//maps/"
        settings.importer.keypoints = "//clip.json"
        settings.generate.output_dir = "//frames/"
        settings.generate.reference = "//hero.png"
    assert settings.generate.reference == "//hero.png"


def test_line_widths_follow_the_backend_and_the_panel_says_what_it_offers(scene):
    """Issue 14: "auto" line widths (the default) and what the panel says of the last backend
    seen; the enum's stored numbers of the older choices are unchanged."""
    from posebridge.generate import families

    props = scene.posebridge.bl_rna.properties
    assert scene.posebridge.line_widths == "auto"
    assert {item.identifier: item.value for item in props["line_widths"].enum_items} == {
        "auto": 3, "controlnet": 0, "xinsir": 1, "proportional": 2}
    settings = scene.posebridge.generate
    settings.pipeline, settings.quality = "ANIMATEDIFF", "PREVIEW"
    families.remember({"status": "ready", "family": "sdxl", "pose_style": "xinsir", "pipelines": ["frames"],
                       "preview": None, "preview_unavailable": "no such file: /x/lcm.safetensors"})
    try:
        seen = []
        draw_all(seen)
    finally:
        families.forget()
    labels = [text for entry in seen if isinstance(entry, tuple) for text in entry[1:]]
    assert "quality" in seen
    assert "Auto: SDXL (wider sticks), as the backend serves SDXL" in labels
    assert "The SDXL backend runs: frames" in labels
    assert "No preview on this backend: no such file: /x/lcm.safetensors" in labels
