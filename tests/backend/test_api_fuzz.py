"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis) and with malformed PNG controls
(hypothesis), against a real backend process on 127.0.0.1: no 500s, every 4xx says what is wrong
(422s name the field), and the backend keeps serving."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server(tmp_path_factory, backend_server):  # backend_server: skips where there is no backend
    import backend_process

    # Small limits: a fuzzed job the backend accepts is generated for real, so keep it short.
    with backend_process.start_backend(tmp_path_factory.mktemp("fuzz"), token=backend_process.TEST_TOKEN,
                                       extra_args=("--max-frames", "2", "--max-queued", "4",
                                                   "--max-request-mb", "4")) as proc:
        yield proc


@pytest.fixture(scope="module")
def auth(server):
    return {"Authorization": f"Bearer {server.token}"}


@pytest.fixture(scope="module")
def api_schema(server, auth):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=auth)


def _check_answer(response) -> None:
    request = f"{response.request.method} {response.request.url}"
    assert response.status_code < 500, f"{request}: {response.status_code} {response.text[:300]}"
    if 400 <= response.status_code < 500:
        detail = response.json().get("detail")
        assert isinstance(detail, str) and detail.strip(), f"{request}: a {response.status_code} without a reason"
        for error in response.json().get("errors", ()):  # a request validation error: names each field
            if error["type"] == "json_invalid":
                assert "not valid JSON" in detail, f"{request}: {detail!r}"
                continue
            field = ".".join(str(part) for part in error["loc"] if part != "body") or "request body"
            assert field in detail, f"{request}: {detail!r} does not name {field}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_answers_without_a_server_error(api_schema, server, auth, mode):
    """Requests drawn from the schema, valid ones and ones breaking it, for every operation.
    (Driven by hypothesis directly: schemathesis' pytest plugin does not run under pytest 9.)"""
    @FUZZ
    @given(case=api_schema.as_strategy(generation_mode=mode))
    def fuzz(case):
        _check_answer(case.call(headers=auth, timeout=30))
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200, "the backend keeps serving"

    fuzz()


# --- PNG controls ----------------------------------------------------------------------------------

def _png(mode: str, size: tuple[int, int]) -> bytes:
    from PIL import Image

    image = Image.new(mode, size)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _claimed_size_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a few bytes of data (a decompression bomb's
    header without the bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


pngs = st.one_of(
    st.builds(_png, st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]),
              st.tuples(st.integers(1, 80), st.integers(1, 80))),
    st.builds(_claimed_size_png, st.integers(1, 2 ** 31 - 1), st.integers(1, 2 ** 31 - 1)),
    st.builds(lambda data, cut: data[:cut], st.builds(_png, st.just("RGB"), st.just((64, 64))), st.integers(0, 200)),
    st.binary(max_size=64),
)


@FUZZ
@given(pose=pngs, depth=st.one_of(st.none(), pngs), second=st.booleans())
def test_malformed_png_controls_are_refused_by_name(server, auth, pose, depth, second):
    frame = {"frame": 1, "pose": base64.b64encode(pose).decode()}
    if depth is not None:
        frame["depth"] = base64.b64encode(depth).decode()
    frames = [frame] + ([{"frame": 2, "pose": base64.b64encode(_png("RGB", (64, 64))).decode()}] if second else [])
    body = {"params": {"prompt": "fuzz", "steps": 1, "batch": 1}, "frames": frames}
    response = requests.post(f"{server.url}/jobs", json=body, headers=auth, timeout=60)
    _check_answer(response)
    if response.status_code >= 400 and response.status_code not in (429,):
        assert "frame" in response.json()["detail"], f"{response.json()['detail']!r} names no frame"
    elif response.status_code < 300:
        requests.delete(f"{server.url}/jobs/{response.json()['id']}", headers=auth, timeout=30)
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
