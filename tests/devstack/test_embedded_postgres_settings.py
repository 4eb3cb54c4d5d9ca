"""The embedded server's settings: shared buffers sized to the machine, written as SHOW prints them."""

from stageline_devstack.postgres import server_settings

GIB = 2**30


def test_shared_buffers_are_an_eighth_of_memory_between_128mb_and_1gb() -> None:
    assert server_settings(512 * 2**20)["shared_buffers"] == "128MB"
    assert server_settings(4 * GIB)["shared_buffers"] == "512MB"
    assert server_settings(6 * GIB)["shared_buffers"] == "768MB"
    assert server_settings(8 * GIB)["shared_buffers"] == "1GB"
    assert server_settings(256 * GIB)["shared_buffers"] == "1GB"


def test_checkpoints_are_spaced_out() -> None:
    settings = server_settings(8 * GIB)
    assert (settings["max_wal_size"], settings["checkpoint_timeout"]) == ("4GB", "15min")
