"""Settings saved in the .blend: per scene (what to render) and per armature (its rig map)."""
from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .render import rig_presets


def _blend_relative_path_options() -> set[str]:
    """Options for path properties that take // (the .blend's folder). Blender 4.5+ warns on
    every // path unless the property says it takes them; 4.2 has no such option (and takes
    them anyway)."""
    options = {"ANIMATABLE"}  # StringProperty's own default, kept
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties:
        options.add("PATH_SUPPORTS_BLEND_RELATIVE")
    return options


PATH_OPTIONS = _blend_relative_path_options()


def _is_camera(_self, obj) -> bool:
    return obj.type == "CAMERA"


def _preset_items(_self, _context):
    return rig_presets.preset_enum_items()


class POSEBRIDGE_PG_map_entry(bpy.types.PropertyGroup):
    """One line of a custom rig map: keypoint <- bone end."""

    keypoint: StringProperty(name="Keypoint", description="OpenPose keypoint name, e.g. r_elbow")
    bone: StringProperty(name="Bone", description="Bone whose head or tail gives the keypoint")
    anchor: EnumProperty(
        name="Anchor",
        items=(("HEAD", "Head", "The bone's head"), ("TAIL", "Tail", "The bone's tail")),
        default="HEAD",
    )


class POSEBRIDGE_PG_rig(bpy.types.PropertyGroup):
    """Per armature object: whether it is a character, and which rig map it uses."""

    include: BoolProperty(
        name="Include", default=True, description="Render this armature as a person in the pose maps"
    )
    preset: EnumProperty(
        name="Rig map",
        items=_preset_items,
        description="Which bone gives which keypoint; Auto picks the preset that fits the bone names",
    )
    custom_map: CollectionProperty(type=POSEBRIDGE_PG_map_entry)
    custom_map_index: IntProperty()
    custom_head_bone: StringProperty(
        name="Head bone",
        description="Bone the face points (nose, eyes, ears, face contour) are placed from, "
        "in a custom map",
    )


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


class POSEBRIDGE_PG_import(bpy.types.PropertyGroup):
    """The Import Pose panel: a reference clip's keypoints onto a rig."""

    keypoints: StringProperty(
        name="Keypoints", subtype="FILE_PATH", options=PATH_OPTIONS,
        description="Folder of per-frame OpenPose JSON, a ComfyUI POSE_KEYPOINT file or one OpenPose "
        "frame; or a video (.mp4 .mov .m4v .mkv .avi .webm): the backend extracts its keypoints first",
    )
    armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                              description="Rig that receives the motion (a new action)")
    camera: PointerProperty(name="Camera", type=bpy.types.Object, poll=_is_camera,
                            description="Camera the video is seen through; empty uses the scene camera")
    layout: EnumProperty(
        name="Layout",
        items=(("AUTO", "Auto", "Detect from the point count"), ("coco18", "COCO-18", "OpenPose COCO / ControlNet"),
               ("body25", "BODY_25", "OpenPose BODY_25"), ("body25b", "BODY_25B", "OpenPose BODY_25B"),
               ("coco17", "COCO-17", "COCO body"), ("dwpose133", "DWPose-133", "DWPose whole body")),
    )
    coordinates: EnumProperty(
        name="Coordinates",
        items=(("auto", "Auto", "Detect pixels or 0-1"), ("pixels", "Pixels", ""), ("normalized", "0-1", "")),
    )
    use_canvas: BoolProperty(name="Canvas size", default=False,
                             description="Give the video size when the file does not carry it "
                             "(otherwise the scene's render size)")
    canvas_x: IntProperty(name="W", default=1920, min=1, subtype="PIXEL")
    canvas_y: IntProperty(name="H", default=1080, min=1, subtype="PIXEL")
    person: EnumProperty(
        name="Person",
        items=(("AUTO", "Most prominent", "The person most visible over the clip"),
               ("INDEX", "By index", "The person at this index in the first frame"),
               ("PIXEL", "Nearest pixel", "The person nearest a pixel of the first frame")),
    )
    person_index: IntProperty(name="Index", default=0, min=0)
    person_x: IntProperty(name="X", default=0)
    person_y: IntProperty(name="Y", default=0)
    min_confidence: FloatProperty(name="Min confidence", default=0.1, min=0.0, max=1.0)
    smooth: BoolProperty(name="Smooth", default=True, description="Remove detector jitter (One Euro, no lag)")
    smooth_strength: FloatProperty(name="Strength", default=1.0, min=0.0, soft_max=4.0)
    fix_swaps: BoolProperty(name="Fix left/right swaps", default=True)
    use_scene_start: BoolProperty(name="Start at scene start", default=True)
    start_frame: IntProperty(name="Start frame", default=1)
    depth_mode: EnumProperty(
        name="Distance",
        items=(("rig_size", "From rig size", "Distance from the rig's size against the performer's"),
               ("fixed", "Fixed", "Keep the rig at its current distance from the camera")),
    )
    ground: BoolProperty(name="Feet on ground", default=False)
    lift: EnumProperty(
        name="Lift",
        # Stable numbers (see PIPELINE_ITEMS): a .blend saves the number.
        items=(("geometric", "Geometric", "Each limb's depth from the rig's bone length against how long it looks; "
                "towards or away by continuity and joint limits", 0),
               ("learned", "Learned", "The learned lifter reads how far each arm and leg reaches towards or away "
                "from the camera, whatever the rig's build", 1)),
        default="learned",
    )
    camera_tilt: EnumProperty(
        name="Camera tilt",
        items=(("scene", "From scene camera", "The learned lift is told how the camera tilts against the floor "
                "(match the camera to the shot)", 0),
               ("image", "From image", "The learned lift reads the camera's tilt from the image alone "
                "(for a scene camera not matched to the shot)", 1)),
        default="scene",
    )
    # A video source (Extract and Import): the backend's pose extraction, then the same import.
    extractor: EnumProperty(
        name="Extractor",
        # Stable numbers (see PIPELINE_ITEMS): a .blend saves the number.
        items=(("mediapipe", "MediaPipe", "One person, CPU, offline: MediaPipe's holistic landmarkers", 0),
               ("dwpose", "DWPose", "Several people: DWPose whole-body ONNX models (the backend needs them)", 1)),
    )
    video_every: IntProperty(name="Every", default=1, min=1, description="Extract every Nth video frame")
    use_video_range: BoolProperty(name="Video frames", default=False,
                                  description="Extract only these video frames (0-based, inclusive)")
    video_start: IntProperty(name="From", default=0, min=0)
    video_end: IntProperty(name="To", default=99, min=0)
    extract_dir: StringProperty(
        name="Extraction folder", subtype="DIR_PATH", options=PATH_OPTIONS, default="//posebridge_extract",
        description="Each extraction lands in a new folder here named after the video (never over an earlier one)",
    )
    add_movie_strip: BoolProperty(name="Movie strip", default=True,
                                  description="Add the video to the VSE on a free channel, in time with the keys")
    add_background: BoolProperty(name="Camera background", default=True,
                                 description="Show the video behind the camera's view, lined up with the first key")


# Stable numbers: a .blend saves the number, so items may be renamed or added but never renumbered.
PIPELINE_ITEMS = (
    ("AUTO", "Auto", "What the backend does by default: AnimateDiff when it has a motion module, "
     "else Frames", 0),
    ("ANIMATEDIFF", "AnimateDiff", "The whole range as one video through a motion module: the look "
     "holds and the motion flows from frame to frame (frames land when the video is done)", 1),
    ("FRAMES", "Frames", "Each frame on its own from the same noise: frames land one by one, but "
     "details flicker from frame to frame", 2),
    ("WAN_VACE", "Wan VACE", "Wan 2.1 VACE, a video diffusion transformer: the pose (or depth) maps as its "
     "control video, in segments of up to 81 frames that continue from each other, the reference image "
     "as the character. Trained at 16 fps, but the frames follow the pose maps one to one, so at 24 fps "
     "the motion plays at the animator's timing. Needs a backend started with a Wan model; the first job "
     "loads it (slow)", 3),
)
# Wan VACE's control video. The numbers are stable, as above.
VACE_CONTROL_ITEMS = (
    ("AUTO", "Auto", "Pose over depth when depth maps are rendered, else pose", 0),
    ("POSE", "Pose", "The pose maps: the character moves as posed, the model invents the set", 1),
    ("DEPTH", "Depth", "The depth maps: the shapes of the character and the set, no skeleton "
     "(needs Depth on in Pose Maps)", 2),
    ("POSE_OVER_DEPTH", "Pose over depth", "The pose skeleton drawn over the depth maps: pose for the "
     "character, depth for the set; best where the two are apart (needs Depth on in Pose Maps)", 3),
)
WAN_RESOLUTION_ITEMS = (
    ("480p", "480p", "About 832x480 pixels at the pose maps' aspect: what the 1.3B model was trained at", 0),
    ("720p", "720p", "About 1280x720 pixels: for the 14B model; slower and needs much more memory", 1),
    ("maps", "Pose maps' size", "The pose maps' own size, to multiples of 16: quick small previews; "
     "far from 480p or 720p the model works outside what it was trained on", 2),
)


class POSEBRIDGE_PG_lora(bpy.types.PropertyGroup):
    """One LoRA of the Generate panel's list."""

    enabled: BoolProperty(name="Use", default=True, description="Send this LoRA with the job")
    source: StringProperty(
        name="LoRA", subtype="FILE_PATH", options=PATH_OPTIONS,
        description="A LoRA as downloaded (.safetensors, diffusers or Kohya/A1111 format) on the backend's "
        "machine, or a Hugging Face id (owner/repo or owner/repo/file.safetensors). Frames and AnimateDiff",
    )
    weight: FloatProperty(name="Weight", default=1.0, min=-4.0, max=4.0, soft_min=0.0, soft_max=1.5,
                          description="How strongly the LoRA acts: 0 is as if it were not there")


class POSEBRIDGE_PG_generate(bpy.types.PropertyGroup):
    """The Generate panel: what the backend is asked for, and where its frames land."""

    prompt: StringProperty(
        name="Prompt",
        description="What the generated frames show. Prompt travel: \"1: walking in a forest | "
        "48: running in the rain\" moves from one prompt to the next between those frames (the "
        "scene's frame numbers); before the first number the first prompt holds, after the last "
        "the last",
    )
    negative: StringProperty(name="Negative", description="What they should not show",
                             default="blurry, deformed, extra limbs")
    quality: EnumProperty(
        name="Quality",
        items=(
            ("FINAL", "Final", "The full render: the pipeline, steps and guidance set here, at the pose maps' size"),
            ("PREVIEW", "Preview", "A whole shot in seconds: the backend's few-step LoRA (LCM) per frame at half "
             "size, into the output folder's preview/ subfolder and a strip of its own"),
        ),
        default="FINAL",
    )
    pipeline: EnumProperty(
        name="Pipeline", items=PIPELINE_ITEMS, default="AUTO",
        description="How the frames are made: as one video (AnimateDiff, Wan VACE) or each on its own "
        "(Frames)",
    )
    wan_resolution: EnumProperty(
        name="Resolution", items=WAN_RESOLUTION_ITEMS, default="480p",
        description="Wan VACE: the size the model generates at (a multiple of 16 near the pose maps' "
        "aspect); the frames come back at the pose maps' size either way",
    )
    vace_control: EnumProperty(
        name="Control", items=VACE_CONTROL_ITEMS, default="AUTO",
        description="Wan VACE: what its control video shows (it takes one)",
    )
    seed: IntProperty(name="Seed", default=0, min=0,
                      description="The noise the frames start from: the same seed, poses and settings "
                      "give the same frames; another seed another take")
    steps: IntProperty(name="Steps", default=20, min=1, max=200, description="Denoising steps")
    guidance: FloatProperty(name="Guidance", default=7.5, min=0.0, max=30.0,
                            description="Classifier-free guidance scale")
    pose_scale: FloatProperty(name="Pose", default=1.0, min=0.0, max=2.0,
                              description="Pose ControlNet conditioning scale")
    depth_scale: FloatProperty(name="Depth", default=1.0, min=0.0, max=2.0,
                               description="Depth ControlNet conditioning scale (used when depth maps exist)")
    batch: IntProperty(name="Batch", default=4, min=1, max=64,
                       description="Frames pipeline: frames per UNet call on the backend (more is faster, "
                       "needs more memory)")
    loras: CollectionProperty(type=POSEBRIDGE_PG_lora)
    lora_index: IntProperty(name="Active LoRA", default=0, min=0)
    reference: StringProperty(
        name="Reference", subtype="FILE_PATH", options=PATH_OPTIONS,
        description="A PNG image of the character (face, costume): every frame is steered towards "
        "it, so the character looks the same all through the shot. Empty: no reference",
    )
    identity_scale: FloatProperty(
        name="Identity", default=0.6, min=0.0, max=2.0,
        description="How strongly the frames follow the reference image: higher keeps the character "
        "closer to it but can override the prompt and stiffen the pose; 0 ignores it",
    )
    context_length: IntProperty(
        name="Context", default=16, min=8, max=32,
        description="AnimateDiff: frames the motion module sees at once. Longer windows keep motion "
        "coherent over longer stretches but need more memory; 16 is what the motion modules were "
        "trained on",
    )
    context_stride: IntProperty(
        name="Stride", default=4, min=1, max=32,
        description="AnimateDiff: frames between the starts of overlapping windows (at most the "
        "context). Smaller strides overlap more and hide the joins between windows, at more "
        "compute",
    )
    segment: IntProperty(
        name="Segment", default=0, min=0,
        description="Frames per job for long shots. Each segment is made after the one before and "
        "continues from its last frames; a stopped run resumes at the first unfinished segment. "
        "AnimateDiff: new frames per job, 0: the whole range as one video. Wan VACE: the clip "
        "length, counting the 5 frames it continues from (at least 9), 0: 81, as Wan was trained",
    )
    output_dir: StringProperty(
        name="Output", subtype="DIR_PATH", options=PATH_OPTIONS, default="//posebridge/generated/",
        description="Folder for frame_NNNN.png (pose maps go to its poses/ subfolder)",
    )
    overwrite: BoolProperty(
        name="Overwrite changed frames", default=False,
        description="Regenerate frames in the output folder that were made with other settings or "
        "other pose maps (off: Generate stops and says which)",
    )
    name: StringProperty(name="Strip", default="PoseBridge",
                         description="Name of the image strip the frames land in (re-running updates it)")
    adherence_threshold: FloatProperty(
        name="Flag Below", default=0.5, min=0.0, max=1.0,
        description="Check Pose Adherence flags the frames whose body PCK (the share of body joints "
        "found where the pose map put them) is below this, or with a swapped limb or a missing "
        "person, so you can regenerate just those",
    )


class POSEBRIDGE_PG_scene(bpy.types.PropertyGroup):
    """What the Render button renders; defaults follow the scene."""

    character_index: IntProperty(name="Character", description="Armature selected in the list")
    importer: PointerProperty(type=POSEBRIDGE_PG_import)
    generate: PointerProperty(type=POSEBRIDGE_PG_generate)
    output_dir: StringProperty(
        name="Output", subtype="DIR_PATH", options=PATH_OPTIONS, default="//posebridge/",
        description="Folder for pose_NNNN.png and keypoints/ (// is the .blend's folder)",
    )
    camera: PointerProperty(
        name="Camera", type=bpy.types.Object, poll=_is_camera,
        description="Camera to project through; empty uses the scene camera",
    )
    use_scene_frames: BoolProperty(name="Scene frame range", default=True)
    frame_start: IntProperty(name="Start", default=1)
    frame_end: IntProperty(name="End", default=250)
    use_scene_resolution: BoolProperty(name="Scene resolution", default=True)
    resolution_x: IntProperty(name="X", default=512, min=16, max=16384, subtype="PIXEL")
    resolution_y: IntProperty(name="Y", default=512, min=16, max=16384, subtype="PIXEL")
    hands: BoolProperty(name="Hands", default=True, description="Draw and write the 21-point hands")
    face: BoolProperty(name="Face", default=True, description="Draw and write the face landmarks")
    line_widths: EnumProperty(
        name="Line widths",
        # Numbered: a saved .blend keeps the number, and "auto" came after the other three.
        items=(
            ("auto", "Match Backend", "The widths the generation backend's openpose ControlNet was trained on: "
             "ControlNet's for SD1.5, wider sticks for SDXL (Generate asks the backend first)", 3),
            ("controlnet", "ControlNet", "Exactly as ControlNet's openpose preprocessor draws (SD1.5 models)", 0),
            ("xinsir", "SDXL (wider sticks)", "Wider limbs at high resolutions, as newer SDXL openpose "
             "models (xinsir) were trained", 1),
            ("proportional", "Proportional", "Every line and dot scaled with the image size (512 px = 1x)", 2),
        ),
        default="auto",
    )
    occlusion: BoolProperty(
        name="Occlusion", default=False,
        description="Leave out keypoints the scene hides from the camera (other objects, the "
        "character's own body mesh), as a detector looking at the render would not see them",
    )
    depth: BoolProperty(
        name="Depth", default=False,
        description="Also write depth_NNNN.png beside each pose map: near bright, far dark, background "
        "black, one range for the whole shot (Generate sends them to the depth ControlNet)",
    )
    depth_mode: EnumProperty(
        name="Mode",
        items=(("inverse", "Inverse", "Inverse depth: detail near the camera, as depth ControlNets expect"),
               ("linear", "Linear", "Grey level proportional to the distance")),
        default="inverse",
    )
    depth_bits: EnumProperty(
        name="Bits", items=(("8", "8-bit", "256 grey levels"), ("16", "16-bit", "65536 grey levels")),
        default="8",
    )
    depth_subject: EnumProperty(
        name="Show",
        items=(("scene", "Scene", "Everything the render shows"),
               ("characters", "Characters", "Only the characters' meshes; the set is masked out")),
        default="scene",
    )
    depth_use_range: BoolProperty(
        name="Set near/far", default=False,
        description="Map these distances to white and black (off: the shot's own depth range)",
    )
    depth_near: FloatProperty(name="Near", default=1.0, min=0.0001, subtype="DISTANCE", unit="LENGTH")
    depth_far: FloatProperty(name="Far", default=20.0, min=0.0002, subtype="DISTANCE", unit="LENGTH")


CLASSES = (
    POSEBRIDGE_PG_map_entry, POSEBRIDGE_PG_rig, POSEBRIDGE_PG_import, POSEBRIDGE_PG_lora, POSEBRIDGE_PG_generate,
    POSEBRIDGE_PG_scene,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.posebridge = PointerProperty(type=POSEBRIDGE_PG_scene)
    bpy.types.Object.posebridge = PointerProperty(type=POSEBRIDGE_PG_rig)


def unregister():
    del bpy.types.Object.posebridge
    del bpy.types.Scene.posebridge
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
