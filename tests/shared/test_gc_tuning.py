"""Collections pause for a batch and resume after it, also when it fails."""

import gc

import pytest

from stageline_shared.gc_tuning import collections_paused


def test_collections_pause_during_a_batch_and_resume_after_a_failure() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collections_paused():
        assert not gc.isenabled()
        raise RuntimeError("batch failed")
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with collections_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
