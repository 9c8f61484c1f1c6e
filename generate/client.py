"""HTTP client for the generation backend (docs/backend_api.md), standard library only.

It runs inside Blender's Python, so no requests/httpx: ``http.client`` with a fresh connection
per request, which also makes one client safe to share between threads. ``http.client`` (rather
than ``urllib.request``) ignores ``http_proxy`` variables, which would otherwise send requests for
a backend on 127.0.0.1 through a corporate proxy.

Every failure is a ``BackendError``; the subclasses tell the caller what to do about it:
``BackendUnavailable`` (nothing answers: start the backend), ``BackendNotReady`` (it answers but
is still loading or failed to load), ``BackendAuthError`` (token), ``BackendBusy`` (its queue is
full: submit again after ``retry_after`` seconds), ``BackendRequestError`` (the backend refused the
request and said why in ``detail``).
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import uuid
from urllib.parse import quote, urlencode, urlsplit

from .controls import ControlFolderError, ControlFrame

DEFAULT_TIMEOUT = 30.0
# POST /jobs answers only after the backend has decoded every frame: a long job on a busy CPU
# takes well over DEFAULT_TIMEOUT, and giving up then would leave a queued job we never heard of.
SUBMIT_TIMEOUT = 600.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with entries; an empty one


class BackendError(Exception):
    """Anything that went wrong talking to the backend; the message is worded for the user."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class BackendUnavailable(BackendError):
    """No answer: connection refused, reset, timed out or the host is unknown."""


class BackendNotReady(BackendError):
    """``/health`` answered 503: the models are loading (``state == "loading"``) or failed (``"error"``)."""

    def __init__(self, message: str, *, url: str | None = None, state: str = "loading", health: dict | None = None):
        super().__init__(message, url=url, status=503)
        self.state = state
        self.health = health or {}


class BackendBusy(BackendError):
    """The backend's queue is full (HTTP 429): nothing was queued; submit again later."""

    def __init__(self, message: str, *, url: str | None = None, retry_after: float = 10.0):
        super().__init__(message, url=url, status=429)
        self.retry_after = retry_after


def _retry_after(headers) -> float:
    """Retry-After's seconds (1-300), 10 when absent or a date."""
    try:
        return min(300.0, max(1.0, float(headers.get("Retry-After"))))
    except (TypeError, ValueError):
        return 10.0


def submit_when_free(submit, cancel, say, check_cancel):
    """``submit()`` once the backend has room: while it answers busy (its queue is full), say so
    and wait the time it asks for (a cancel ends the wait: ``check_cancel`` raises)."""
    while True:
        try:
            return submit()
        except BackendBusy as busy:
            say(f"{busy}; trying again in {busy.retry_after:g} s")
            cancel.wait(busy.retry_after)
            check_cancel()


class BackendAuthError(BackendError):
    """401 (no token sent) or 403 (wrong token)."""


class BackendRequestError(BackendError):
    """A 4xx answer other than 401/403; ``detail`` is the backend's own explanation."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None, detail: str = ""):
        super().__init__(message, url=url, status=status)
        self.detail = detail


def _format_detail(detail) -> str:
    """The backend's ``detail``: a string, or FastAPI's list of ``{loc, msg}`` validation errors."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return "" if detail is None else json.dumps(detail)


def _read_bytes(path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ControlFolderError(f"{path}: cannot be read ({error.strerror or error})") from None


def _b64_file(path) -> str:
    return base64.b64encode(_read_bytes(path)).decode("ascii")


def encode_frame(frame: ControlFrame) -> dict:
    """One ``frames[]`` entry: the files' own PNG bytes in base64 (never decoded and re-encoded,
    so what is sent is exactly what the manifest hashed)."""
    entry = {"frame": int(frame.frame), "pose": _b64_file(frame.pose)}
    if frame.depth is not None:
        entry["depth"] = _b64_file(frame.depth)
    return entry


def encode_lead_frame(frame: ControlFrame, image) -> dict:
    """One ``lead[]`` entry: a frame generated before (``image``, its PNG file) with its controls."""
    return {**encode_frame(frame), "image": _b64_file(image)}


class BackendClient:
    """One backend, addressed by URL (``http://127.0.0.1:8765``, optionally with a path prefix)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        parts = urlsplit(str(url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"backend URL must look like http://HOST:PORT, got {url!r}", url=str(url))
        try:
            port = parts.port
        except ValueError:
            raise BackendError(f"backend URL has a bad port: {url!r}", url=str(url)) from None
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = port
        self._prefix = parts.path.rstrip("/")
        self.url = f"{parts.scheme}://{parts.netloc}{self._prefix}"
        self.token = token or None
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return f"BackendClient({self.url!r}, token={'set' if self.token else None})"

    # -- endpoints -----------------------------------------------------------------------------

    def health(self) -> dict:
        """``GET /health`` of a ready backend (device, dtype, models, has_depth, version).

        Raises BackendNotReady while it loads its models or after they failed to load.
        """
        status, _, body = self._request("GET", "/health", allow={503})
        data = self._json(status, body)
        if status == 503:
            state = str(data.get("status", "loading"))
            if state == "error":
                message = f"the backend at {self.url} could not load its models: {data.get('error') or 'unknown error'}"
            else:
                message = f"the backend at {self.url} is still loading its models"
            raise BackendNotReady(message, url=self.url, state=state, health=data)
        return data

    def submit(
        self,
        params: dict,
        frames: list[ControlFrame],
        name: str | None = None,
        *,
        reference=None,
        lead: list[tuple[ControlFrame, object]] = (),
        idempotency_key: str | None = None,
    ) -> dict:
        """``POST /jobs``: queue a job for these frames; returns its status (``id``, ``state``...).
        reference: the identity reference's PNG file, or None. lead: (control frame, PNG file of
        the frame generated before) pairs a temporal job continues from. idempotency_key: names
        this submit (default: a new random one); the request is sent once more with it when no
        answer came. BackendBusy when the backend's queue is full."""
        document = {"params": dict(params or {}), "frames": [encode_frame(f) for f in frames]}
        if name:
            document["name"] = str(name)
        if reference is not None:
            document["reference"] = _b64_file(reference)
        if lead:
            document["lead"] = [encode_lead_frame(frame, image) for frame, image in lead]
        body = json.dumps(document).encode("utf-8")
        # A fresh key per job: should the answer be lost (a timeout, a dropped connection), the
        # same request sent again gets the job the first one made rather than a second job.
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        try:
            status, _, answer = self._request("POST", "/jobs", body, timeout=self.submit_timeout, headers=headers)
        except BackendUnavailable:
            status, _, answer = self._request("POST", "/jobs", body, timeout=self.submit_timeout, headers=headers)
        return self._json(status, answer)

    def status(self, job_id: str) -> dict:
        """``GET /jobs/{id}``: state, frames, frames_done, progress, queue_position, error."""
        status, _, body = self._request("GET", f"/jobs/{quote(str(job_id), safe='')}")
        return self._json(status, body)

    def jobs(self) -> list[dict]:
        """``GET /jobs``: the status of every job the backend knows."""
        status, _, body = self._request("GET", "/jobs")
        return list(self._json(status, body).get("jobs", []))

    def download_frame(self, job_id: str, frame: int) -> bytes:
        """``GET /jobs/{id}/frames/{frame}``: the finished frame's PNG bytes, as sent."""
        path = f"/jobs/{quote(str(job_id), safe='')}/frames/{int(frame)}"
        status, _, body = self._request("GET", path)
        if not body.startswith(PNG_SIGNATURE):
            raise BackendError(
                f"the backend at {self.url} sent frame {frame} of job {job_id} but it is not a PNG",
                url=self.url, status=status,
            )
        return body

    def submit_extract(self, video_path, *, extractor: str = "mediapipe", every: int = 1,
                       start: int | None = None, end: int | None = None, maps: bool = False) -> dict:
        """``POST /extract``: queue a pose extraction of this video file; returns the job status.
        The file is streamed as the raw request body (never read whole into memory); start/end
        are the video's frame indices (0-based, inclusive), None for its first/last."""
        query = {"extractor": str(extractor), "every": str(int(every)), "maps": "true" if maps else "false",
                 "name": os.path.basename(os.fspath(video_path))}
        if start is not None:
            query["start"] = str(int(start))
        if end is not None:
            query["end"] = str(int(end))
        try:
            handle = open(video_path, "rb")
        except OSError as error:
            raise BackendError(f"{video_path}: cannot be read ({error.strerror or error})") from None
        with handle:
            length = os.fstat(handle.fileno()).st_size
            status, _, answer = self._request(
                "POST", "/extract?" + urlencode(query), handle, timeout=self.submit_timeout,
                content_type="application/octet-stream", content_length=length,
            )
        return self._json(status, answer)

    def submit_adherence(self, body) -> dict:
        """``POST /adherence``: queue a pose-adherence check (the document generate/adherence.py
        builds: generated frames, the keypoints their pose maps came from, or its JSON bytes);
        its job status. Bytes go with their Content-Length, so a backend over its
        --max-request-mb answers 413 before reading them."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        status, _, answer = self._request("POST", "/adherence", data, timeout=self.submit_timeout)
        return self._json(status, answer)

    def download_result(self, job_id: str) -> bytes:
        """``GET /jobs/{id}/result``: the finished job's output folder as zip bytes."""
        path = f"/jobs/{quote(str(job_id), safe='')}/result"
        status, _, body = self._request("GET", path, timeout=self.submit_timeout)
        if not body.startswith(ZIP_SIGNATURES):
            raise BackendError(
                f"the backend at {self.url} sent the result of job {job_id} but it is not a zip",
                url=self.url, status=status,
            )
        return body

    def cancel(self, job_id: str) -> dict:
        """``DELETE /jobs/{id}``: cancel (queued: at once; running: at its next step); its status."""
        status, _, body = self._request("DELETE", f"/jobs/{quote(str(job_id), safe='')}")
        return self._json(status, body)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def submit_timeout(self) -> float:
        """Seconds ``submit`` waits: never less than SUBMIT_TIMEOUT (the others use ``timeout``)."""
        return max(self.timeout, SUBMIT_TIMEOUT)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _request(self, method: str, path: str, body=None, allow=frozenset(),
                 timeout: float | None = None, content_type: str = "application/json",
                 content_length: int | None = None, headers: dict | None = None):
        """(status, headers, body) of a 2xx answer (or one in ``allow``); BackendError otherwise.
        ``body``: bytes, or an open binary file streamed with ``content_length``.
        ``timeout``: seconds to wait on the socket (default ``self.timeout``)."""
        timeout = self.timeout if timeout is None else timeout
        headers = {"Accept": "application/json, image/png, application/zip", **(headers or {})}
        if body is not None:
            headers["Content-Type"] = content_type
        if content_length is not None:
            headers["Content-Length"] = str(int(content_length))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        connection = self._connection(timeout)
        try:
            try:
                connection.request(method, self._prefix + path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                if body is None:
                    raise
                # The backend may have answered (413 too large, 401) and closed before reading
                # the whole body: read that answer rather than report it as gone.
            response = connection.getresponse()
            data = response.read()
            status, answer_headers = response.status, response.headers
        except (TimeoutError, socket.timeout):
            raise BackendUnavailable(
                f"no backend at {self.url} answered within {timeout:g} s — is it running?",
                url=self.url,
            ) from None
        except socket.gaierror:
            raise BackendUnavailable(
                f"no backend at {self.url} — the host {self._host!r} is unknown", url=self.url
            ) from None
        except ssl.SSLError as error:
            raise BackendError(f"secure connection to {self.url} failed: {error}", url=self.url) from None
        except (OSError, http.client.HTTPException) as error:
            # Refused, reset, remote closed mid-answer: nothing (or nothing anymore) serves there.
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise BackendUnavailable(
                f"no backend at {self.url} — is it running? ({reason})", url=self.url
            ) from None
        finally:
            connection.close()
        if 200 <= status < 300 or status in allow:
            return status, answer_headers, data
        raise self._error(method, path, status, data, answer_headers)

    def _error(self, method: str, path: str, status: int, data: bytes, headers) -> BackendError:
        try:
            detail = _format_detail(json.loads(data).get("detail"))
        except (ValueError, AttributeError):
            detail = data[:200].decode("utf-8", "replace").strip()
        if status == 401:
            return BackendAuthError(
                f"token missing: the backend at {self.url} needs a token (the one it was started with)",
                url=self.url, status=status,
            )
        if status == 403:
            return BackendAuthError(
                f"token rejected: the backend at {self.url} does not accept this token",
                url=self.url, status=status,
            )
        if status == 429:
            return BackendBusy(f"the backend at {self.url} is busy: {detail or 'its queue is full'}",
                               url=self.url, retry_after=_retry_after(headers))
        if 400 <= status < 500:
            what = detail or f"HTTP {status}"
            return BackendRequestError(
                f"the backend at {self.url} refused {method} {path}: {what}",
                url=self.url, status=status, detail=detail,
            )
        return BackendError(
            f"the backend at {self.url} failed on {method} {path} (HTTP {status})" + (f": {detail}" if detail else ""),
            url=self.url, status=status,
        )

    def _json(self, status: int, body: bytes) -> dict:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BackendError(
                f"the server at {self.url} did not answer like a PoseBridge backend (HTTP {status}) — is the URL right?",
                url=self.url, status=status,
            )
        return data
