"""LoRAs per job: each loaded once into the warm models, switched between jobs by weight.

A job names its LoRAs as (source, weight) pairs (``GenerateParams.loras``): a local
``.safetensors`` file (diffusers or Kohya/A1111 format, as people download them) or a Hugging
Face ``repo_id`` or ``repo_id/file.safetensors`` (from the user's cache; downloaded only where
the network is allowed). ``LoraSet.use(models, loras)`` loads the ones not seen yet (diffusers'
adapter API through peft: ``load_lora_weights`` under a name of our own) and activates exactly
the job's, with its weights; a job without LoRAs runs with them all switched off. The base model
is never reloaded; a LoRA once loaded stays, so going back to it costs nothing.

Where they go: the UNet and the text encoder, shared by the pose and pose+depth pipelines;
AnimateDiff's motion UNet is a module tree of its own (its spatial weights shared), so each LoRA
is injected there too. Never fused: fusing writes into the weights the two UNets share.

Kohya files: diffusers converts their keys, but scales every module by the file's most common
``alpha``; modules with an alpha of their own are folded into their ``lora_up`` here, so each
module keeps its own scale.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

KOHYA_PREFIXES = ("lora_te_", "lora_unet_", "lora_te1_", "lora_te2_")
WEIGHT_LIMIT = 4.0  # |weight| beyond this is a typo, not a style


class LoraError(ValueError):
    """A LoRA that cannot be read or applied, worded for the user."""


def check_choice(source, weight) -> tuple[str, float]:
    """A job's (source, weight) pair, checked; ValueError naming the problem."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"a LoRA's source must be a file path or a Hugging Face id (got {source!r})")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not abs(weight) <= WEIGHT_LIMIT:
        raise ValueError(f"LoRA {source}: weight must be a number from -{WEIGHT_LIMIT:g} to {WEIGHT_LIMIT:g} (got {weight!r})")
    return source.strip(), float(weight)


def missing_local_file(source: str) -> str | None:
    """Why a source that names a local file cannot be one, or None (a Hugging Face id, or a file
    that is there). Checked when a job is submitted, so the error comes at once."""
    path = Path(source).expanduser()
    if path.suffix == ".safetensors" and (path.is_absolute() or source.startswith((".", "~"))) and not path.is_file():
        return f"no such file on the backend's machine: {path}"
    return None


def version_of(source: str) -> str:
    """What tells one version of a LoRA from the next: a local file's modification time and size
    (a LoRA trained further under the same name is loaded again), else the id itself."""
    path = Path(source).expanduser()
    if path.is_file():
        stat = path.stat()
        return f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"
    return source


def adapter_name(version: str) -> str:
    """A name of our own per version: never a word that occurs in module paths (peft warns)."""
    return "lora_" + hashlib.sha256(version.encode("utf-8")).hexdigest()[:12]


def read_state_dict(pipe, source: str) -> dict:
    """The LoRA's tensors, Kohya alphas folded in; LoraError naming the source otherwise."""
    problem = missing_local_file(source)
    if problem:
        raise LoraError(f"LoRA {source}: {problem}")
    path = Path(source).expanduser()
    try:
        if path.is_file():
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:  # a Hugging Face id: "owner/repo", or "owner/repo/file.safetensors"
            parts = source.split("/")
            repo, weight_name = "/".join(parts[:2]), "/".join(parts[2:]) or None
            state, _ = pipe.lora_state_dict(repo, weight_name=weight_name)
    except Exception as error:  # OSError, the hub offline, safetensors' own errors
        raise LoraError(f"LoRA {source}: cannot be read ({type(error).__name__}: {error})") from None
    if state and all(key.startswith(KOHYA_PREFIXES) for key in state):
        state = fold_kohya_alphas(state)
    return state


def fold_kohya_alphas(state: dict) -> dict:
    """Each module's alpha / rank folded into its ``lora_up``; the alpha keys dropped."""
    folded = {}
    for key, value in state.items():
        if key.endswith(".alpha"):
            continue
        if key.endswith(".lora_up.weight"):
            base = key[: -len(".lora_up.weight")]
            alpha = state.get(base + ".alpha")
            down = state.get(base + ".lora_down.weight")
            if alpha is not None and down is not None:
                value = value * (float(alpha) / down.shape[0])
        folded[key] = value
    return folded


@dataclass
class LoraSet:
    """The LoRAs loaded into one set of models, by source; ``loads`` counts file reads."""

    loaded: dict[str, str] = field(default_factory=dict)  # source -> adapter name (of its version)
    loads: int = 0
    active: tuple = ()

    def use(self, models, loras) -> None:
        """Load what is new (or changed on disk), then make exactly ``loras`` [(source,
        weight), ...] active."""
        pipes = [p for p in (models.pose_pipe, models.motion_pipe) if p is not None]
        wanted = [check_choice(source, weight) for source, weight in loras]
        for source, _ in wanted:
            name = adapter_name(version_of(source))
            if self.loaded.get(source) != name:
                if source in self.loaded:  # an older version of the file: out with it
                    _delete(models, self.loaded.pop(source))
                self._load(models, source, name)
        if not wanted:
            if self.loaded:
                for pipe in pipes:
                    pipe.disable_lora()
            self.active = ()
            return
        names = [self.loaded[source] for source, _ in wanted]
        weights = [weight for _, weight in wanted]
        for pipe in pipes:
            pipe.enable_lora()  # set_adapters does not undo a disable_lora
            pipe.set_adapters(names, adapter_weights=weights)
        self.active = tuple(wanted)

    def _load(self, models, source: str, name: str) -> None:
        state = read_state_dict(models.pose_pipe, source)
        try:
            # load_lora_weights consumes the dict it is given: each pipeline gets its own copy.
            models.pose_pipe.load_lora_weights(dict(state), adapter_name=name)
            motion = models.motion_pipe
            if motion is not None:  # its own UNet module tree; the text encoder is shared
                unet_state, alphas = motion.lora_state_dict(dict(state))
                motion.load_lora_into_unet(unet_state, alphas, motion.unet, adapter_name=name, _pipeline=motion)
        except Exception as error:  # keys that fit no module, a rank mismatch, ...
            _delete(models, name)
            raise LoraError(f"LoRA {source}: does not fit this model ({type(error).__name__}: {error})") from None
        self.loaded[source] = name
        self.loads += 1


def _delete(models, name: str) -> None:
    """Take the adapter out of every pipeline that has it."""
    for pipe in (models.pose_pipe, models.motion_pipe):
        if pipe is not None and name in {n for names in pipe.get_list_adapters().values() for n in names}:
            pipe.delete_adapters(name)
