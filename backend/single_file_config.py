"""The configuration a single-file checkpoint is read with, found without the network.

A community checkpoint downloaded as one ``.safetensors`` holds weights only; diffusers needs a
diffusers-format folder of the same architecture to build the model they go into. Left to
itself, diffusers guesses the architecture and fetches that folder from the hub, even when told
to stay offline (``from_single_file`` turns ``local_files_only`` off when the configuration is
not cached). Here the folder comes, in this order, from:

1. the folder the user names (``--model-config``, ``--controlnet-config``);
2. the family's reference model in the user's Hugging Face cache (its configuration files only);
3. the published configuration bundled with PoseBridge (backend/published_configs.py and the CLIP
   tokenizer's merges, backend/configs/clip_bpe_merges.txt.gz), written once into PoseBridge's
   cache folder.

The family comes from the checkpoint's tensor names (backend/families.py).
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from . import published_configs as published
from .families import FAMILY_SPECS, SD15, SDXL

CONFIG_PATTERNS = ["*.json", "**/*.json", "*.txt", "**/*.txt"]
BUNDLE_VERSION = 1  # raise when the bundled folders' content changes: they are written again
MERGES_FILE = Path(__file__).resolve().parent / "configs" / "clip_bpe_merges.txt.gz"
START, END = "<|startoftext|>", "<|endoftext|>"


def posebridge_cache() -> Path:
    """PoseBridge's own cache folder (POSEBRIDGE_CACHE, else ~/.cache/posebridge)."""
    return Path(os.environ.get("POSEBRIDGE_CACHE") or Path.home() / ".cache" / "posebridge").expanduser()


def cached_snapshot(repo: str, required: str, cache_dir=None) -> Path | None:
    """The configuration files of ``repo`` from the user's Hugging Face cache (never downloaded),
    or None when they are not there (or lack ``required``)."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo, allow_patterns=CONFIG_PATTERNS, local_files_only=True,
                                        cache_dir=cache_dir))
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError is an OSError)
        return None
    return folder if (folder / required).is_file() else None


def pipeline_config(family: str, cache_dir=None) -> tuple[Path, str]:
    """(a diffusers-format configuration folder for ``family``'s base pipeline, where it came
    from: "cache" or "bundled")."""
    cached = cached_snapshot(FAMILY_SPECS[family].model, "model_index.json", cache_dir)
    if cached is not None and _has_tokenizers(cached):
        return cached, "cache"
    return _bundled(family, "pipeline", _write_pipeline), "bundled"


def controlnet_config(family: str, cache_dir=None) -> tuple[Path, str]:
    """(the same for ``family``'s ControlNets, where it came from)."""
    cached = cached_snapshot(FAMILY_SPECS[family].pose_controlnet, "config.json", cache_dir)
    if cached is not None:
        return cached, "cache"
    return _bundled(family, "controlnet", _write_controlnet), "bundled"


def _has_tokenizers(folder: Path) -> bool:
    names = ["tokenizer"] + (["tokenizer_2"] if (folder / "text_encoder_2").is_dir() else [])
    return all((folder / name / "vocab.json").is_file() or (folder / name / "tokenizer.json").is_file()
               for name in names)


def _bundled(family: str, kind: str, write) -> Path:
    """The bundled folder, written once into PoseBridge's cache. Several processes may ask at
    once (replicas of a scaled-out backend): each writes its own copy and renames it in; the
    first rename wins and the others use its folder."""
    import shutil

    folder = posebridge_cache() / "single-file-configs" / f"{family}-{kind}"
    if _current(folder):
        return folder
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    write(family, partial)
    (partial / "posebridge-bundle.json").write_text(json.dumps({"version": BUNDLE_VERSION}), encoding="utf-8")
    if folder.exists() and not _current(folder):  # an older bundle: out with it
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(partial, folder)
    except OSError:  # another process renamed its copy in first
        shutil.rmtree(partial, ignore_errors=True)
        if not _current(folder):
            raise
    return folder


def _current(folder: Path) -> bool:
    try:
        stamp = json.loads((folder / "posebridge-bundle.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("version") == BUNDLE_VERSION


def _write_json(path: Path, body: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def _write_pipeline(family: str, folder: Path) -> None:
    from transformers import CLIPTextConfig

    if family == SD15:
        index = {"_class_name": "StableDiffusionPipeline", "requires_safety_checker": False,
                 "safety_checker": [None, None], "feature_extractor": [None, None],
                 "scheduler": ["diffusers", "PNDMScheduler"]}
        parts = {"unet": published.SD15_UNET, "vae": published.SD15_VAE}
        texts = {"text_encoder": ("CLIPTextModel", published.SD15_TEXT_ENCODER, published.SD15_TOKENIZER)}
        scheduler = published.SD15_SCHEDULER
    elif family == SDXL:
        index = {"_class_name": "StableDiffusionXLPipeline", "force_zeros_for_empty_prompt": True,
                 "scheduler": ["diffusers", "EulerDiscreteScheduler"]}
        parts = {"unet": published.SDXL_UNET, "vae": published.SDXL_VAE}
        texts = {"text_encoder": ("CLIPTextModel", published.SDXL_TEXT_ENCODER, published.SDXL_TOKENIZER),
                 "text_encoder_2": ("CLIPTextModelWithProjection", published.SDXL_TEXT_ENCODER_2,
                                    published.SDXL_TOKENIZER_2)}
        scheduler = published.SDXL_SCHEDULER
    else:
        raise ValueError(f"no bundled configuration for the family {family!r}")
    index.update(unet=["diffusers", "UNet2DConditionModel"], vae=["diffusers", "AutoencoderKL"])
    for name, body in parts.items():
        _write_json(folder / name / "config.json", {"_class_name": index[name][1], **body})
    tokenizer = None
    for encoder, (class_name, config, tokenizer_settings) in texts.items():
        suffix = encoder.removeprefix("text_encoder")
        index[encoder] = ["transformers", class_name]
        index["tokenizer" + suffix] = ["transformers", "CLIPTokenizer"]
        text_config = CLIPTextConfig(**config)
        text_config.architectures = [class_name]
        text_config.save_pretrained(folder / encoder)
        tokenizer = clip_tokenizer(tokenizer_settings)
        tokenizer.save_pretrained(folder / ("tokenizer" + suffix))
    _write_json(folder / "scheduler" / "scheduler_config.json", scheduler)
    _write_json(folder / "model_index.json", index)


def _write_controlnet(family: str, folder: Path) -> None:
    config = published.SDXL_CONTROLNET if family == SDXL else published.SD15_CONTROLNET
    _write_json(folder / "config.json", {"_class_name": "ControlNetModel", **config})


def clip_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-level BPE vocabulary (49,408 tokens) and merges, as OpenAI's tokenizer builds
    them: the 256 byte characters (printable ones first), each again word-final, one token per
    merge, the two special tokens last."""
    from .tiny_model import bytes_to_unicode

    text = gzip.decompress(MERGES_FILE.read_bytes()).decode("utf-8")
    merges = [tuple(line.split()) for line in text.split("\n")[1:] if line]
    table = bytes_to_unicode()
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    order = printable + [b for b in range(256) if b not in set(printable)]
    characters = [table[b] for b in order]
    tokens = characters + [c + "</w>" for c in characters] + [a + b for a, b in merges] + [START, END]
    return {token: index for index, token in enumerate(tokens)}, merges


def clip_tokenizer(settings: dict):
    """A CLIPTokenizer with CLIP's own vocabulary and ``settings`` (published_configs)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocabulary()
    return CLIPTokenizer(vocab=vocab, merges=merges, bos_token=settings["bos_token"],
                         eos_token=settings["eos_token"], pad_token=settings["pad_token"],
                         unk_token=settings["unk_token"], model_max_length=settings["model_max_length"])
