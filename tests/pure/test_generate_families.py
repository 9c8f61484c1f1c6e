"""The client's side of model families (generate/families.py): SDXL's sizes, "auto" line widths
following the backend's /health, and the notes Generate reports."""
import pytest

from posebridge.generate import families

SDXL_HEALTH = {"status": "ready", "family": "sdxl", "pose_style": "xinsir"}
SD15_HEALTH = {"status": "ready", "family": "sd15", "pose_style": "controlnet"}


@pytest.fixture(autouse=True)
def nothing_seen():
    families.forget()
    yield
    families.forget()


@pytest.mark.parametrize("size, bucket", [
    ((1920, 1080), (1344, 768)), ((1080, 1920), (768, 1344)), ((1000, 1000), (1024, 1024)),
    ((640, 480), (1152, 896)), ((2560, 1080), (1536, 640)), ((512, 512), (1024, 1024)),
    ((1216, 832), (1216, 832)),
])
def test_the_sdxl_bucket_nearest_the_aspect(size, bucket):
    assert families.sdxl_bucket(*size) == bucket


def test_buckets_are_about_a_megapixel_in_multiples_of_64():
    for width, height in families.SDXL_BUCKETS:
        assert abs(width * height - 1024 * 1024) / (1024 * 1024) < 0.07
        assert width % 64 == 0 and height % 64 == 0
    with pytest.raises(ValueError, match="must be positive"):
        families.sdxl_bucket(0, 10)


def test_auto_line_widths_follow_the_backend_seen_last():
    assert families.line_widths_for("auto") == "controlnet", "nothing seen: ControlNet's own"
    assert families.line_widths_for("proportional") == "proportional"
    assert families.line_widths_for("auto", SDXL_HEALTH) == "xinsir"
    families.remember(SDXL_HEALTH)
    assert families.line_widths_for("auto") == "xinsir"
    assert families.line_widths_for("controlnet") == "controlnet", "a chosen width stays chosen"
    families.remember({"status": "loading"})
    assert families.line_widths_for("auto") == "xinsir", "a backend still loading says nothing"
    families.remember(SD15_HEALTH)
    assert families.line_widths_for("auto") == "controlnet"
    families.remember({"status": "ready"})  # a backend from before families: ControlNet's widths
    assert families.line_widths_for("auto") == "controlnet"


def test_map_size_for_the_family():
    assert families.map_size_for(SDXL_HEALTH, (1920, 1080), None) == (1344, 768)
    assert families.map_size_for(SDXL_HEALTH, (1920, 1080), (512, 512)) == (512, 512), "a chosen size stays"
    assert families.map_size_for(SD15_HEALTH, (1920, 1080), None) is None, "SD1.5: the scene's size"
    assert families.map_size_for({}, (1920, 1080), None) is None


def test_the_panel_says_what_auto_means():
    assert families.describe("controlnet") == ""
    assert "no backend seen yet" in families.describe("auto")
    families.remember(SDXL_HEALTH)
    assert families.describe("auto") == "Auto: SDXL (wider sticks), as the backend serves SDXL"
    assert families.describe("auto", SD15_HEALTH) == "Auto: ControlNet, as the backend serves SD1.5"


def test_small_maps_for_an_sdxl_backend_get_a_note():
    note = families.small_maps_note(SDXL_HEALTH, (512, 288))
    assert "512x288" in note and "--resolution 1344x768 --line-widths xinsir" in note
    assert families.small_maps_note(SDXL_HEALTH, (1344, 768)) is None
    assert families.small_maps_note(SD15_HEALTH, (512, 288)) is None
