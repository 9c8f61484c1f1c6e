"""The HTTP routes of the analysis jobs (docs/backend_api.md): POST /extract (a video file as the
raw body), POST /extract/frames, POST /adherence, and the result zip of any finished job.

    add_analysis_routes(app, backend, limits, errors)    # from server.create_app

Requests are checked before a job is queued: an unknown extractor or parameter is 422, one this
backend cannot run, an unreadable video or image 400, with the reason. The jobs run on the
analysis queue (backend/analysis_jobs.py), never behind a generation job and whether or not the
generation models have loaded. A job's inputs (the uploaded video, the posted frames) live in
``work_dir/<id>.input/`` until the job ends; its results in ``work_dir/<id>/``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Literal

from fastapi import HTTPException, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from .analysis_jobs import ADHERENCE, EXTRACT, FINISHED_STATES
from .api_models import AdherenceRequest, ExtractFramesRequest, JobStatus
from .extract import EXTRACTORS, PARTS
from .extract.base import ExtractionError
from .extract.output import INFO_FILE
from .job_input import BadJobInput, png_image_bytes

ExtractorName = Literal[tuple(EXTRACTORS)]
EXTRACT_QUERY = ("extractor", "every", "start", "end", "maps", "body_only", "name")
UPLOAD_CHUNK = 1 << 20


# --- which extractors can run here --------------------------------------------------------------

def extractor_problem(name: str, dwpose_dir=None) -> str | None:
    """Why extractor ``name`` cannot run on this backend, or None when it can (nothing loaded)."""
    if name == "mediapipe":
        if importlib.util.find_spec("mediapipe") is None:
            return ("the mediapipe package is not installed in the backend's Python (pip install "
                    "'.[backend]', or backend/requirements.txt)")
        if importlib.util.find_spec(f"{__package__}.extract.mediapipe_extractor") is None:
            return "this backend has no mediapipe extractor module"
        return None
    if name == "dwpose":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed in the backend's Python"
        from .extract.dwpose import why_unavailable

        return why_unavailable(dwpose_dir)
    return f"unknown extractor {name!r}"


def available_extractors(dwpose_dir=None) -> list[str]:
    return [name for name in EXTRACTORS if extractor_problem(name, dwpose_dir) is None]


def _check_extractor(name: str, dwpose_dir) -> None:
    problem = extractor_problem(name, dwpose_dir)
    if problem is not None:
        raise HTTPException(400, f"extractor {name!r} cannot run on this backend: {problem}")


def _model_dir(name: str, dwpose_dir):
    return dwpose_dir if name == "dwpose" else None


# --- the result zip -----------------------------------------------------------------------------

def zip_folder(folder: Path, destination: Path) -> Path:
    """Zip ``folder``'s files (relative names, no hidden or temporary files); PNGs stored as they
    are (already compressed), the rest deflated."""
    with zipfile.ZipFile(destination, "w") as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if not path.is_file() or any(part.startswith(".") for part in relative.parts):
                continue
            method = zipfile.ZIP_STORED if path.suffix.lower() == ".png" else zipfile.ZIP_DEFLATED
            archive.write(path, relative.as_posix(), compress_type=method)
    return destination


def _written_frames(folder: Path) -> list[int]:
    """The frames an extraction's extraction.json lists (after a cancel or failure too)."""
    try:
        return [int(f) for f in json.loads((folder / INFO_FILE).read_text("utf-8")).get("frames") or []]
    except (OSError, ValueError, TypeError):
        return []


def _safe_name(name: str, default: str) -> str:
    base = os.path.basename(str(name).replace("\\", "/")).strip()
    return "".join(c if c.isalnum() or c in "-_. " else "_" for c in base).strip(" .")[:120] or default


def _parts(body_only: bool) -> tuple[str, ...]:
    return ("body",) if body_only else PARTS


def _too_many(count: int, limits) -> None:
    if count > limits.max_frames:
        raise HTTPException(413, f"too many frames: {count}, the limit is {limits.max_frames} (--max-frames)")


def _decode_png(text: str, label: str) -> tuple[bytes, tuple[int, int]]:
    try:
        return png_image_bytes(text, label)
    except BadJobInput as exc:
        raise HTTPException(400, str(exc)) from None


def _unique_frames(numbers: list[int], what: str) -> None:
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise HTTPException(400, f"{what}: duplicate frame numbers: {', '.join(map(str, duplicates[:10]))}")


def _submit_or_clean(input_folder: Path, submit):
    """Submit the job; if that fails, its uploaded input goes (the queue only cleans up the inputs
    of jobs it holds)."""
    try:
        return submit()
    except BaseException:
        shutil.rmtree(input_folder, ignore_errors=True)
        raise


# --- the routes ---------------------------------------------------------------------------------

def add_analysis_routes(app, backend, limits, errors: dict) -> None:
    """``backend``: server._Backend (its ``analysis`` queue, ``work_dir``, ``dwpose_dir``)."""
    from .extract.run import check_range, extract_pictures, extract_video, planned_frames
    from .extract.video import probe_video

    def input_dir(job_id: str) -> Path:
        return Path(backend.work_dir) / f"{job_id}.input"

    @app.post("/extract", status_code=201, response_model=JobStatus, responses=errors,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def submit_extract(
        request: Request,
        extractor: ExtractorName = Query("mediapipe", description="mediapipe (one person) or dwpose"),
        every: int = Query(1, ge=1, description="every Nth frame"),
        start: int | None = Query(None, ge=0, description="first video frame index (0-based)"),
        end: int | None = Query(None, ge=0, description="last video frame index, inclusive"),
        maps: bool = Query(False, description="also draw the pose maps (maps/pose_NNNN.png)"),
        body_only: bool = Query(False, description="body only: no hands, no face (faster)"),
        name: str = Query("", max_length=200, description="the video's file name, for extraction.json"),
    ):
        """The video file's bytes as the body: a job extracting its poses (docs/backend_api.md)."""
        unknown = sorted(set(request.query_params) - set(EXTRACT_QUERY))
        if unknown:
            raise HTTPException(422, "; ".join(f"query.{key}: unknown parameter" for key in unknown))
        if start is not None and end is not None and end < start:
            raise HTTPException(422, f"query.end: end ({end}) is before start ({start})")
        _check_extractor(extractor, backend.dwpose_dir)
        queue = backend.analysis
        job_id = queue.new_job_id()
        folder = input_dir(job_id)
        folder.mkdir(parents=True)
        video_name = _safe_name(name, "video")
        video = folder / ("video" + Path(video_name).suffix.lower())
        size = 0
        try:
            with open(video, "wb") as handle:
                async for chunk in request.stream():
                    handle.write(chunk)
                    size += len(chunk)
            if not size:
                raise HTTPException(400, "empty body: send the video file's bytes (application/octet-stream)")
            try:
                info = await run_in_threadpool(probe_video, video)
                check_range(every, start, end, info.frame_count, video_name)
            except ExtractionError as exc:
                raise HTTPException(400, str(exc).replace(video.name, video_name)) from None
            planned = planned_frames(info.frame_count, every, start, end)
            _too_many(len(planned), limits)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        parts = _parts(body_only)
        params = {"extractor": extractor, "every": every, "start": start, "end": end, "maps": maps,
                  "parts": list(parts), "fps": info.fps, "width": info.width, "height": info.height,
                  "frame_count": info.frame_count, "rotation": info.rotation}

        def work(job):
            try:
                result = extract_video(
                    video, job.folder, extractor=extractor, every=every, start=start, end=end, maps=maps,
                    parts=parts, model_dir=_model_dir(extractor, backend.dwpose_dir),
                    on_progress=job.report, cancelled=job.cancelled, name=video_name,
                )
            finally:
                job.frames_done = _written_frames(job.folder)
            return result.frames

        job = _submit_or_clean(folder, lambda: queue.submit(
            EXTRACT, work, name=video_name, params=params, input_dir=folder, job_id=job_id, frames=planned))
        return queue.status(job.id)

    @app.post("/extract/frames", status_code=201, response_model=JobStatus, responses=errors)
    def submit_extract_frames(request: ExtractFramesRequest):
        """Pictures (base64 PNGs of one size) instead of a video."""
        _too_many(len(request.frames), limits)
        if not request.frames:
            raise HTTPException(400, "no frames given")
        numbers = [f.frame for f in request.frames]
        _unique_frames(numbers, "frames")
        _check_extractor(request.extractor, backend.dwpose_dir)
        queue = backend.analysis
        job_id = queue.new_job_id()
        folder = input_dir(job_id)
        folder.mkdir(parents=True)
        try:
            pictures, first = [], None
            for f in request.frames:
                data, size = _decode_png(f.image, f"frame {f.frame} image")
                if first is not None and size != first:
                    raise HTTPException(400, f"frames of different sizes: frame {request.frames[0].frame} is "
                                             f"{first[0]}x{first[1]}, frame {f.frame} is {size[0]}x{size[1]}")
                first = first or size
                path = folder / f"frame_{f.frame:04d}.png"
                path.write_bytes(data)
                pictures.append((f.frame, path))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        parts = _parts(request.body_only)
        params = {"extractor": request.extractor, "fps": request.fps, "maps": request.maps, "parts": list(parts),
                  "width": first[0], "height": first[1]}

        def work(job):
            try:
                result = extract_pictures(
                    pictures, job.folder, fps=request.fps, extractor=request.extractor, maps=request.maps,
                    parts=parts, model_dir=_model_dir(request.extractor, backend.dwpose_dir),
                    on_progress=job.report, cancelled=job.cancelled, name=request.name,
                )
            finally:
                job.frames_done = _written_frames(job.folder)
            return result.frames

        job = _submit_or_clean(folder, lambda: queue.submit(
            EXTRACT, work, name=request.name, params=params, input_dir=folder, job_id=job_id, frames=sorted(numbers)))
        return queue.status(job.id)

    @app.post("/adherence", status_code=201, response_model=JobStatus, responses=errors)
    def submit_adherence(request: AdherenceRequest):
        """Generated frames and the keypoints their pose maps were drawn from: a pose-adherence check."""
        from .adherence_run import check_adherence
        from ..pose.formats.openpose_json import frame_file_name, read_people, write_json_atomic

        _too_many(max(len(request.generated), len(request.keypoints)), limits)
        _unique_frames([f.frame for f in request.generated], "generated")
        _unique_frames([f.frame for f in request.keypoints], "keypoints")
        both = sorted({f.frame for f in request.generated} & {f.frame for f in request.keypoints})
        if not both:
            raise HTTPException(400, "no generated frame has keypoints (match them by frame number)")
        for f in request.keypoints:
            try:
                read_people(f.document)
            except ValueError as exc:
                raise HTTPException(400, f"keypoints frame {f.frame}: {exc}") from None
        _check_extractor(request.extractor, backend.dwpose_dir)
        queue = backend.analysis
        job_id = queue.new_job_id()
        folder = input_dir(job_id)
        folder.mkdir(parents=True)
        try:
            for f in request.generated:
                data, _ = _decode_png(f.image, f"generated frame {f.frame} image")
                (folder / f"frame_{f.frame:04d}.png").write_bytes(data)
            for f in request.keypoints:
                write_json_atomic(folder / frame_file_name(f.frame, "pose"), f.document)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        params = {"extractor": request.extractor, "threshold": request.threshold}

        def work(job):
            document = check_adherence(
                folder, folder, out_dir=job.folder, extractor=request.extractor, threshold=request.threshold,
                on_progress=job.report, cancelled=job.cancelled,
                extractor_options={"model_dir": _model_dir(request.extractor, backend.dwpose_dir)},
            )
            return [entry["frame"] for entry in document.get("frames", [])]

        job = _submit_or_clean(folder, lambda: queue.submit(
            ADHERENCE, work, name=request.name, params=params, input_dir=folder, job_id=job_id, frames=both))
        return queue.status(job.id)

    @app.get("/jobs/{job_id}/result", response_class=FileResponse,
             responses={200: {"content": {"application/zip": {}}}, 409: errors[404], **errors})
    def job_result(job_id: str):
        """The finished job's output folder as a zip (generate: its frames)."""
        status = backend.job_status(job_id)
        if status is None:
            raise HTTPException(404, f"no job {job_id!r}")
        if status["state"] not in FINISHED_STATES:
            raise HTTPException(409, f"job {job_id!r} is {status['state']}: its result is ready once it is done")
        folder = Path(backend.work_dir) / job_id
        destination = Path(backend.work_dir) / f".result-{job_id}-{uuid.uuid4().hex[:8]}.zip"
        zip_folder(folder, destination)
        filename = _safe_name(Path(status.get("name") or "").stem, job_id) + ".zip"
        return FileResponse(destination, media_type="application/zip", filename=filename,
                            background=BackgroundTask(os.unlink, destination))
