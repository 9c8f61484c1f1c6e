"""The backend's HTTP service (docs/backend_api.md), a FastAPI app around the job queue.

    app = create_app(lambda: load_pipeline(...), token="T", work_dir="/tmp/pb")

The same app is the ingress of a scaled-out backend (backend/scale): there ``load`` returns a
description of the generator replicas' models (backend.model_info.ModelInfo) and ``make_queue`` a
queue that runs each job's units on them.

The pipeline loads in a background thread once the app starts, so /health answers at once (503
"loading" until the model is in memory). Analysis jobs (pose extraction, adherence:
backend/analysis_routes.py) have their own queue, which runs from the start whatever the models
do. Endpoints are plain functions: FastAPI runs them on its thread pool, which suits the queue's
thread locks and the image decoding of POST /jobs.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Callable

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from . import __version__
from .analysis_jobs import AnalysisQueue
from .analysis_routes import add_analysis_routes, available_extractors
from .api_models import ErrorBody, Health, JobList, JobRequest, JobStatus
from .guards import BearerTokenGuard, BodySizeLimit, LocalHostGuard
from .job_input import BadJobInput, decode_frames, decode_reference, frame_size
from .jobs import JobQueue, QueueFull
from .loras import missing_local_file
from .model_info import ModelInfo
from .pipelines import ANIMATEDIFF, FRAMES, WAN_VACE, GenerateParams, animatediff, is_temporal, wan_vace


@dataclass
class ServerLimits:
    max_frames: int = 1000
    max_request_bytes: int = 256 * 2**20
    default_batch: int = 4
    max_queued: int = 16  # jobs waiting; past it POST /jobs answers 429


RETRY_AFTER_S = 10  # what a 429 asks a client to wait before submitting again
# Printable ASCII without spaces, as HTTP header values and file-safe records take it.
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200, pattern=r"^[!-~]+$",
    description="a key of the client's choosing, new for each job: a submit repeated with it (after a"
    " timeout, say) returns the job it made instead of a second one (200)")]


class _Backend:
    """What the routes share: the loading state, the models, the job queue."""

    def __init__(self, load: Callable, make_queue: Callable, work_dir, dwpose_dir=None):
        self.load = load
        self.make_queue = make_queue
        self.work_dir = work_dir
        self.dwpose_dir = dwpose_dir
        self.status = "loading"
        self.error: str | None = None
        self.models = None  # LoadedModels, or a ModelInfo where the models live in other processes
        self.queue: JobQueue | None = None
        self.analysis = AnalysisQueue(work_dir)  # extraction and adherence: needs no model

    def load_in_background(self) -> None:
        threading.Thread(target=self._load, name="posebridge-load", daemon=True).start()

    def _load(self) -> None:
        try:
            models = self.load()
            queue = self.make_queue(models)
            queue.start()
        except Exception as exc:  # reported by /health; the process stays up to say why
            traceback.print_exc(file=sys.stderr)
            self.error = f"{type(exc).__name__}: {exc}"
            self.status = "error"
            return
        self.models, self.queue = models, queue
        self.status = "ready"
        print("PoseBridge backend: model loaded", file=sys.stderr, flush=True)

    def health(self) -> tuple[int, dict]:
        extractors = available_extractors(self.dwpose_dir)
        if self.status == "loading":
            return 503, {"status": "loading", "extractors": extractors}
        if self.status == "error":
            return 503, {"status": "error", "error": self.error, "extractors": extractors}
        return 200, {"status": "ready", **self.info().health(), "version": __version__, "extractors": extractors}

    def info(self) -> ModelInfo:
        """The loaded models as the routes see them (read afresh: wan-vace's model loads late)."""
        return self.models if isinstance(self.models, ModelInfo) else ModelInfo.of(self.models)

    def job_queue(self, job_id: str):
        """The queue holding job ``job_id`` (generation or analysis), or None."""
        if self.queue is not None and self.queue.get(job_id) is not None:
            return self.queue
        return self.analysis if self.analysis.get(job_id) is not None else None

    def job_status(self, job_id: str) -> dict | None:
        queue = self.job_queue(job_id)
        return None if queue is None else queue.status(job_id)

    def statuses(self) -> list[dict]:
        """Every job of both queues, in submission order."""
        jobs = (self.queue.statuses() if self.queue is not None else []) + self.analysis.statuses()
        return sorted(jobs, key=lambda status: status["created"])

    def ready_queue(self) -> JobQueue:
        if self.queue is None:
            what = "is still loading" if self.status == "loading" else f"failed to load ({self.error})"
            raise HTTPException(503, f"the model {what}")
        return self.queue


def _check_params(params: GenerateParams, pipe: ModelInfo) -> None:
    """400 naming a parameter these models cannot honour."""
    if params.preview and pipe.preview is None:
        why = pipe.preview_unavailable or "it was started with --preview-lora none"
        raise HTTPException(400, f"params.preview: this backend has no fast preview ({why})")
    if params.pipeline not in pipe.pipelines:
        raise HTTPException(
            400,
            f"pipeline {params.pipeline!r} is not available on this backend (it runs {', '.join(pipe.pipelines)})"
            f"{_what_it_needs(params.pipeline, pipe)}",
        )
    try:
        if params.pipeline == ANIMATEDIFF:
            animatediff.check_params(pipe, params)
        if params.pipeline == WAN_VACE:
            wan_vace.check_params(params)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        params.prompt_schedule()
    except ValueError as exc:
        raise HTTPException(400, f"params.prompt: {exc}") from None
    if params.loras and params.pipeline == WAN_VACE:
        raise HTTPException(400, "params.loras: LoRAs are for the SD1.5 pipelines (frames, animatediff), not wan-vace")
    for index, (source, _) in enumerate(params.lora_choices()):
        problem = missing_local_file(source)
        if problem:
            raise HTTPException(400, f"params.loras.{index}.source: {problem}")


def _what_it_needs(pipeline: str, pipe) -> str:
    if pipeline == WAN_VACE:
        reason = pipe.models.get("wan_unavailable")
        return f"; wan-vace needs a Wan VACE model (serve --wan-model){': ' + reason if reason else ''}"
    return "; animatediff needs a motion adapter (serve --motion-adapter)" if pipeline == ANIMATEDIFF else ""


def _validation_message(errors) -> str:
    """One line naming every bad field: 'params.stepz: unknown parameter; params.steps: ...'."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "request body"
        if error.get("type") == "json_invalid":  # its loc is the character, not a field
            reason = (error.get("ctx") or {}).get("error") or "cannot be decoded"
            parts.append(f"request body: not valid JSON ({reason} at character {where})")
        elif error.get("type") == "extra_forbidden":
            parts.append(f"{where}: unknown parameter")
        else:
            text = f"{where}: {error.get('msg', 'invalid')}"
            value = error.get("input")
            if isinstance(value, (int, float, str, bool)) and len(repr(value)) < 40:
                text += f" (got {value!r})"
            parts.append(text)
    return "; ".join(parts) or "invalid request"


def _add_security_to_openapi(app: FastAPI) -> None:
    """Publish the bearer token in the OpenAPI document (the guard middleware enforces it)."""
    build = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}]
            for method in schema.get("paths", {}).get("/health", {}).values():
                method["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def create_app(
    load: Callable,
    *,
    work_dir: str | os.PathLike,
    token: str | None = None,
    limits: ServerLimits | None = None,
    fail_at_frame: int | None = None,
    bound_host: str | None = None,
    dwpose_dir: str | os.PathLike | None = None,
    make_queue: Callable | None = None,
) -> FastAPI:
    """The app. load() returns a backend.models.LoadedModels (called once, in a thread,
    at startup). token: required as 'Authorization: Bearer TOKEN' on all but /health; without
    one, only requests whose Host is a loopback name/address or ``bound_host`` (the --host it
    listens on) are served. fail_at_frame: test-only fault (backend.jobs.FAIL_AT_FRAME_ENV).
    dwpose_dir: a folder holding DWPose's model files (else the Hugging Face cache).
    make_queue(models): the job queue for what load() returned (default: a JobQueue running
    them in this process)."""
    limits = limits or ServerLimits()
    if make_queue is None:
        def make_queue(models):
            return JobQueue(models, work_dir, fail_at_frame=fail_at_frame)
    backend = _Backend(load, make_queue, work_dir, dwpose_dir)

    @asynccontextmanager
    async def lifespan(app):
        backend.analysis.start()
        backend.load_in_background()
        yield
        backend.analysis.stop(timeout=5)
        if backend.queue is not None:
            backend.queue.stop(timeout=5)

    app = FastAPI(
        title="PoseBridge backend",
        version=__version__,
        description="Pose (and depth) frames in, ControlNet-generated frames out. See docs/backend_api.md.",
        lifespan=lifespan,
    )
    app.state.backend = backend
    errors = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 429, 503)}

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse(
            status_code=422,
            content={"detail": _validation_message(exc.errors()), "errors": jsonable_encoder(exc.errors())},
        )

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health():
        code, body = backend.health()
        return JSONResponse(status_code=code, content=body)

    def busy(waiting: int) -> HTTPException:
        return HTTPException(
            429, f"the queue is full: {waiting} jobs are waiting (--max-queued {limits.max_queued});"
            f" try again in {RETRY_AFTER_S} s", headers={"Retry-After": str(RETRY_AFTER_S)})

    replayed = {200: {"model": JobStatus, "description": "the job this Idempotency-Key submitted before"}}

    @app.post("/jobs", status_code=201, response_model=JobStatus, responses={**errors, **replayed})
    def submit_job(request: JobRequest, idempotency_key: IdempotencyKey = None):
        queue = backend.ready_queue()
        known = queue.job_for_key(idempotency_key)
        if known is not None:
            return JSONResponse(status_code=200, content=jsonable_encoder(queue.status(known.id)))
        waiting = queue.waiting()
        if waiting >= limits.max_queued:  # before decoding what would be refused anyway
            raise busy(waiting)
        info = backend.info()
        if len(request.frames) > limits.max_frames:
            raise HTTPException(
                413,
                f"too many frames: {len(request.frames)}, the limit is {limits.max_frames} (--max-frames)",
            )
        values = request.params.model_dump()
        if values["batch"] is None:
            values["batch"] = limits.default_batch
        if values["pipeline"] is None or values["preview"]:  # a preview runs per frame (backend.preview)
            values["pipeline"] = FRAMES if values["preview"] else info.default_pipeline
        values["loras"] = tuple((lora["source"], lora["weight"]) for lora in values["loras"])
        params = GenerateParams(**values)
        _check_params(params, info)
        wan = params.pipeline == WAN_VACE  # takes depth and a reference without ControlNet or IP-Adapter
        try:
            frames = decode_frames(request.frames, has_depth=info.has_depth or wan, lead=request.lead)
        except BadJobInput as exc:
            raise HTTPException(400, str(exc)) from None
        if wan and params.vace_control in ("depth", "pose_over_depth") and frames[0].depth is None:
            raise HTTPException(400, f"params.vace_control {params.vace_control!r} needs depth frames; none were sent")
        if request.lead and not is_temporal(params.pipeline):
            raise HTTPException(
                400, f"lead frames need a temporal pipeline (animatediff, wan-vace), not {params.pipeline!r}")
        if params.pipeline == ANIMATEDIFF and len(request.lead) >= params.context_length:
            raise HTTPException(
                400, f"{len(request.lead)} lead frames leave no room in a context window of {params.context_length}"
            )
        reference = None
        if request.reference is not None:
            if not info.has_ip_adapter and not wan:
                raise HTTPException(400, "reference given, but the backend was started without an IP-Adapter (--ip-adapter)")
            try:
                reference = decode_reference(request.reference)
            except BadJobInput as exc:
                raise HTTPException(400, str(exc)) from None
        width, height = frame_size(frames)
        if not wan and ((params.width or width) % 8 or (params.height or height) % 8):
            raise HTTPException(
                400,
                f"frame size must be a multiple of 8 (frames are {width}x{height}); set params width/height",
            )
        try:
            job = queue.submit(frames, params, name=request.name, reference=reference, key=idempotency_key,
                               max_waiting=limits.max_queued)
        except QueueFull as full:
            raise busy(full.waiting) from None
        return queue.status(job.id)

    @app.get("/jobs", response_model=JobList, responses=errors)
    def list_jobs():
        return {"jobs": backend.statuses()}

    def _known(job_id: str):
        queue = backend.job_queue(job_id)
        if queue is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return queue

    @app.get("/jobs/{job_id}", response_model=JobStatus, responses=errors)
    def job_status(job_id: str):
        return _known(job_id).status(job_id)

    @app.get(
        "/jobs/{job_id}/frames/{frame}",
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}, **errors},
    )
    def job_frame(job_id: str, frame: int):
        queue = _known(job_id)
        if queue is backend.analysis:
            kind = queue.get(job_id).kind
            raise HTTPException(404, f"job {job_id!r} is an {kind} job: download GET /jobs/{job_id}/result")
        path = queue.finished_frame_path(job_id, frame)
        if path is None:
            job = queue.get(job_id)
            why = "is not in the job" if frame not in job.frames else "is not finished"
            raise HTTPException(404, f"frame {frame} of job {job_id!r} {why}")
        return FileResponse(path, media_type="image/png")

    @app.delete("/jobs/{job_id}", response_model=JobStatus, responses=errors)
    def cancel_job(job_id: str):
        queue = _known(job_id)
        queue.cancel(job_id)
        return queue.status(job_id)

    add_analysis_routes(app, backend, limits, errors)
    _add_security_to_openapi(app)
    # The last added runs first: the token (or Host) is checked before the size, so no body is
    # read for a stranger.
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_request_bytes)
    if token:
        app.add_middleware(BearerTokenGuard, token=token)
    else:
        # No token: a page in the user's browser could reach us by DNS rebinding; Host tells.
        app.add_middleware(LocalHostGuard, bound_host=bound_host)
    return app
