"""The frames of a ``backend.pipelines.generate`` run, in index order (it yields (index, frame))."""


def frames_of(results) -> list:
    pairs = list(results)
    assert [i for i, _ in pairs] == sorted(i for i, _ in pairs), "frames must come in index order"
    return [frame for _, frame in pairs]
