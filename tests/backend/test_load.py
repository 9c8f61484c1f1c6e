"""The backend under load (issue 13), bounded: 20 clients submit, poll and download small jobs
for 15 s against a real backend process (tiny model, loopback, the default --max-queued 16);
/health stays under 100 ms at p99, no job is lost, every frame downloaded equals the frame on
disk. bench/bench_load.py runs the same for a minute and prints the figures."""
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_load  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory, backend_server):  # backend_server: skips where there is no backend
    import backend_process

    with backend_process.start_backend(tmp_path_factory.mktemp("load"), token=backend_process.TEST_TOKEN) as proc:
        yield proc


def test_twenty_clients_for_fifteen_seconds(server):
    report = bench_load.run_load(server.url, server.token, server.work_dir, clients=20, seconds=15.0, grace=120.0)
    print(report.summary())
    assert report.problems() == []
    assert len(report.accepted) >= 20, "every client got at least one job in"
    assert report.frames_checked == len(report.done), "one frame a job, each compared with the disk"
    assert server.process.poll() is None, "the backend is still serving"
