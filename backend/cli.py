"""``posebridge-backend`` (also ``python -m posebridge.backend``): serve | make-tiny-model |
extract | adherence (the last two in cli_extract.py).

    posebridge-backend serve --model DIR --device cpu --token T
    posebridge-backend make-tiny-model DIR
    posebridge-backend extract clip.mp4 --out DIR

Usage errors exit 2 with a message, as argparse does. ``serve`` prints one line,
``PoseBridge backend listening on http://HOST:PORT``, once its socket is bound; callers (Blender's
"start local backend", tests) wait for it or for /health.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import socket
import sys
import tempfile

from . import cli_extract
from .families import DEFAULT_UNION_CONTROLNET, FAMILIES, FAMILY_SPECS, SD15, SDXL
from .model_choice import resolve_models
from .model_loading import ModelLoad, write_tiny_model_set, write_tiny_sdxl_set
from .models import (
    DEFAULT_DEPTH_CONTROLNET,
    DEFAULT_IP_ADAPTER,
    DEFAULT_MODEL,
    DEFAULT_MOTION_ADAPTER,
    DEFAULT_POSE_CONTROLNET,
    DEVICES,
    DTYPES,
)

from .preview import DEFAULT_PREVIEW_LORAS, PREVIEW_STEPS
from .process_watch import process_alive_check, watch_parent
from .scale.options import add_scale_flags, scale_options
from .wan_model import DEFAULT_WAN_MODEL

TOKEN_ENV = "POSEBRIDGE_BACKEND_TOKEN"
SDXL_SPEC = FAMILY_SPECS[SDXL]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (got {value})")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0 (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posebridge-backend", description="PoseBridge's generation backend (docs/backend_api.md)."
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{serve,make-tiny-model,extract,adherence}")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.set_defaults(command_parser=serve)  # its usage errors name "serve"
    add = serve.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=_port, default=8765, help="port (default 8765)")
    add(
        "--model",
        help="base model: hub id, diffusers folder, .safetensors/.ckpt file, or a folder with"
        f" posebridge-models.json (default {DEFAULT_MODEL}; with --family sdxl {SDXL_SPEC.model})",
    )
    add("--family", choices=("auto",) + FAMILIES, default="auto",
        help="the base model's family: sd15 or sdxl; auto reads it from the model's files (SD1.5 when"
        " they do not say). It picks the default ControlNets, IP-Adapter and pose-map line widths")
    add("--pose-controlnet", help=f"openpose ControlNet (default {DEFAULT_POSE_CONTROLNET};"
        f" SDXL: {SDXL_SPEC.pose_controlnet})")
    add(
        "--depth-controlnet",
        help=f"depth ControlNet, or 'none' for pose only (default {DEFAULT_DEPTH_CONTROLNET};"
        f" SDXL: {SDXL_SPEC.depth_controlnet})",
    )
    add("--union-controlnet",
        help=f"an SDXL ControlNet-Union taking pose and depth in one network (e.g. {DEFAULT_UNION_CONTROLNET}),"
        " instead of --pose-controlnet and --depth-controlnet")
    add(
        "--motion-adapter",
        help="AnimateDiff motion adapter for the animatediff pipeline (hub id or folder), or 'none'"
        f" (default {DEFAULT_MOTION_ADAPTER})",
    )
    add(
        "--ip-adapter",
        help="IP-Adapter for identity references (hub id or folder laid out as it: models/image_encoder and"
        " models/ip-adapter_sd15.safetensors, for SDXL sdxl_models/ip-adapter_sdxl_vit-h.safetensors), or"
        f" 'none' (default {DEFAULT_IP_ADAPTER})",
    )
    add(
        "--wan-model",
        help="Wan 2.1 VACE pipeline for the wan-vace pipeline (hub id or diffusers folder), loaded on its first"
        f" job, or 'none' (default {DEFAULT_WAN_MODEL}; Wan-AI/Wan2.1-VACE-14B-diffusers for 720p)",
    )
    add("--preview-lora",
        help="the fast preview's few-step LoRA (file or Hugging Face id), loaded on the first preview job, or"
        f" 'none' (default: LCM-LoRA, {DEFAULT_PREVIEW_LORAS[SD15]} or for SDXL {DEFAULT_PREVIEW_LORAS[SDXL]})")
    add("--preview-steps", type=_positive_int, default=PREVIEW_STEPS,
        help=f"denoising steps of a preview (default {PREVIEW_STEPS}; LCM-LoRA: 2-8)")
    add("--model-config", help="diffusers-format folder holding a single-file --model's configuration"
        " (default: the family's from the Hugging Face cache, else the bundled published one)")
    add("--controlnet-config", help="diffusers-format folder holding single-file ControlNets' configuration")
    add("--device", choices=DEVICES, default="auto")
    add("--dtype", choices=DTYPES, default="auto")
    add(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"bearer token the API requires (or the environment variable {TOKEN_ENV})",
    )
    add("--batch", type=_positive_int, default=4, help="frames per UNet call when a job names none")
    add("--cpu-offload", action="store_true", help="keep weights on the CPU between uses (cuda)")
    add(
        "--compile",
        action="store_true",
        help="torch.compile the UNets and ControlNets: about 1.37x faster on an H200 once warm, but the"
        " first job of each pipeline and frame size compiles first (a minute or two)",
    )
    add("--work-dir", help="where job frames are written (default: a temporary folder, removed at exit)")
    add("--max-frames", type=_positive_int, default=1000, help="most frames in one job (default 1000)")
    add("--max-request-mb", type=_positive_float, default=256.0, help="largest request, MiB (default 256)")
    add("--max-queued", type=_positive_int, default=16,
        help="most jobs waiting to run; past it a submit is answered 429 busy (default 16)")
    add(
        "--parent-pid",
        type=_positive_int,
        metavar="PID",
        help="shut down (as on SIGTERM) once process PID has exited: Blender passes its own, so a"
        " backend it started does not outlive it, even after a crash",
    )
    add(
        "--fallback-tiny-model",
        metavar="DIR",
        help="when the models cannot be had (offline, not cached), serve the tiny random-weight set"
        " from DIR instead (made there if absent): for demos and smoke runs, not for real frames",
    )
    add("--dwpose-dir", help="folder holding DWPose's model files (default: the Hugging Face cache)")
    add_scale_flags(add, _positive_int)

    tiny = commands.add_parser("make-tiny-model", help="write the tiny random-weight model set")
    tiny.add_argument("directory")
    tiny.add_argument("--family", choices=FAMILIES, default=SD15, help="sd15 (default) or sdxl")
    cli_extract.add_commands(commands)
    return parser


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def bind_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def model_load(args, parser) -> ModelLoad:
    """What ``serve`` loads: the models the flags (and any model-set file) name, and how."""
    if args.compile and args.cpu_offload:
        parser.error("--compile does not go with --cpu-offload")
    chosen = resolve_models(args, parser)
    return ModelLoad(
        {key: name if key == "family" else _absolute(name) for key, name in chosen.items()},
        model_config=_absolute(args.model_config),
        controlnet_config=_absolute(args.controlnet_config),
        options=dict(device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload, torch_compile=args.compile,
                     preview_steps=args.preview_steps),
        fallback_tiny_model=_absolute(args.fallback_tiny_model),
        family=chosen["family"],
    )


def _absolute(name: str | None) -> str | None:
    """A local path made absolute (a replica process need not share this one's folder); hub ids
    and None as they are."""
    if name and os.path.exists(os.path.expanduser(name)):
        return os.path.abspath(os.path.expanduser(name))
    if name and name.startswith((".", "~")):  # a relative path still to be made (--fallback-tiny-model)
        return os.path.abspath(os.path.expanduser(name))
    return name


def server_limits(args):
    from .server import ServerLimits

    return ServerLimits(
        max_frames=args.max_frames, max_request_bytes=int(args.max_request_mb * 2**20), default_batch=args.batch,
        max_queued=args.max_queued,
    )


def ingress_settings(args, scale, work_dir):
    """What a scaled-out backend's ingress serves with (backend/scale/ray_app.Ingress)."""
    from .scale.options import IngressSettings

    return IngressSettings(
        work_dir=os.path.abspath(work_dir), limits=server_limits(args), units_in_flight=scale.max_replicas,
        token=args.token, bound_host=args.host, dwpose_dir=_absolute(args.dwpose_dir),
    )


def serve(args, parser) -> int:
    if not is_loopback(args.host) and not args.token:
        parser.error(
            f"refusing to listen on {args.host} (not a loopback address) without --token:"
            " anyone on the network could use the backend"
        )
    load = model_load(args, parser)
    scale = scale_options(args, parser)
    if scale is not None and args.port == 0:
        parser.error("--ray needs a port number: Ray Serve's proxy cannot pick a free one (--port 0)")
    cli_extract.check_dwpose_dir(args, parser)
    parent_alive = None
    if args.parent_pid is not None:
        parent_alive = process_alive_check(args.parent_pid)
        if parent_alive is None:
            print(f"posebridge-backend: warning: cannot watch process {args.parent_pid}; "
                  "--parent-pid is ignored", file=sys.stderr, flush=True)
        elif not parent_alive():
            parser.error(f"--parent-pid {args.parent_pid}: no such process")

    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"posebridge-backend: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    own_work_dir = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="posebridge-backend-") if own_work_dir else args.work_dir
    try:
        if scale is None:
            return _serve_here(args, load, sock, work_dir, parent_alive)
        sock.close()  # Ray Serve's proxy binds the port itself: this only proved it free
        from .scale.launch import serve_ray

        return serve_ray(args, load, scale, ingress_settings(args, scale, work_dir), parent_alive)
    finally:
        sock.close()  # again after a Ray start: closing twice is harmless
        if own_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def listening_line(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"PoseBridge backend listening on http://{host}:{port}"


def _serve_here(args, load, sock, work_dir, parent_alive) -> int:
    """The models and the job queue in this process, served by uvicorn on ``sock``."""
    import uvicorn

    from .jobs import fail_at_frame_from_env
    from .server import create_app

    app = create_app(
        load, work_dir=work_dir, token=args.token, limits=server_limits(args),
        fail_at_frame=fail_at_frame_from_env(), bound_host=args.host, dwpose_dir=args.dwpose_dir,
    )
    # One worker (one process): the pipeline and the job queue live in this process. asyncio and
    # h11 whatever else is installed (Ray Serve brings uvloop and httptools): one behaviour everywhere.
    config = uvicorn.Config(
        app, workers=1, log_level="warning", access_log=False, timeout_graceful_shutdown=5, loop="asyncio", http="h11"
    )
    print(listening_line(args.host, sock.getsockname()[1]), flush=True)
    server = uvicorn.Server(config)
    if parent_alive is not None:
        # should_exit is what uvicorn's own SIGTERM handler sets: the same graceful shutdown.
        watch_parent(args.parent_pid, parent_alive, lambda: setattr(server, "should_exit", True))
    server.run(sockets=[sock])
    return 0


def make_tiny_model_command(args) -> int:
    written = (write_tiny_sdxl_set if args.family == SDXL else write_tiny_model_set)(args.directory)
    print(f"tiny model set written to {written.parent} ({written.name})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args, args.command_parser)
    if args.command in cli_extract.COMMANDS:
        return cli_extract.COMMANDS[args.command](args, args.command_parser)
    return make_tiny_model_command(args)
