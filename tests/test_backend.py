"""The TaskBackend client: loopback hosts, the choice of transport, what a backend sees, big answers."""

from __future__ import annotations

import grpc
import pytest
from buildsync.errors import PermanentError, TransientError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.remote.backend import (
    BackendPool,
    GrpcTaskBackend,
    PrpcTaskBackend,
    fetch_in_halves,
)
from buildsync.remote.backend_options import GRPC, DeploymentOptions
from buildsync.remote.prpc import is_loopback_address
from google.protobuf import struct_pb2

from tests.harness import BACKEND
from tools.task_backend import nested_details


@pytest.mark.parametrize(
    "hostname, loopback",
    [
        ("localhost:8080", True),
        ("localhost:1", True),
        ("127.0.0.1:50051", True),
        ("127.5.5.5:80", True),
        ("127.255.255.254:9", True),
        ("[::1]:50051", True),
        ("localhost", False),
        ("127.0.0.1", False),
        ("localhost:", False),
        ("localhost:http", False),
        ("example.com:443", False),
        ("example.com", False),
        ("10.0.0.1:80", False),
        ("192.168.1.1:80", False),
        ("128.0.0.1:80", False),
        ("::1", False),
        ("[::1]", False),
        (":8080", False),
        ("", False),
        ("localhost.example.com:443", False),
    ],
)
def test_is_loopback_address(hostname, loopback):
    assert is_loopback_address(hostname) is loopback


def details(size: int) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct["log"] = "x" * (size - 20)
    return struct


def ids(*names: str) -> list[pb.TaskID]:
    return [pb.TaskID(target=BACKEND, id=name) for name in names]


@pytest.mark.both_transports
def test_both_transports_send_the_project_header_and_no_token_to_loopback(task_backend, make_fetcher):
    task_backend.backend.set_task("t1", pb.STARTED, 3, target=BACKEND)
    fetcher = make_fetcher(deadline_seconds=10)

    response = fetcher.fetch_tasks(ids("t1"), "chromium")

    assert [r.task.update_id for r in response.responses] == [3]
    (headers,) = task_backend.backend.call_headers
    assert headers["x-luci-project"] == "chromium"
    assert "authorization" not in headers


def test_prpc_is_the_default_and_grpc_is_chosen_per_backend(task_backend):
    options = DeploymentOptions({"swarming://native": {"transport": GRPC}})
    with_options = BackendPool(options=options)
    try:
        assert isinstance(BackendPool().get(BACKEND, task_backend.hostname), PrpcTaskBackend)
        assert isinstance(with_options.get(BACKEND, task_backend.hostname), PrpcTaskBackend)
        assert isinstance(with_options.get("swarming://native", task_backend.grpc_hostname), GrpcTaskBackend)
    finally:
        with_options.close()


def test_the_pool_reuses_a_backends_client_until_its_hostname_changes(task_backend):
    pool = BackendPool()
    first = pool.get(BACKEND, task_backend.hostname)
    assert pool.get(BACKEND, task_backend.hostname) is first
    moved = pool.get(BACKEND, "127.0.0.1:1")
    assert moved is not first and moved.hostname == "127.0.0.1:1"
    pool.close()


@pytest.mark.parametrize("hostname", ["swarm.example.com@evil.example", "swarm example.com", "swarm.example.com/x"])
def test_a_settings_hostname_that_cannot_be_called_is_a_permanent_error_for_its_batches_not_a_bug(hostname):
    pool = BackendPool()
    with pytest.raises(PermanentError, match=f"backend {BACKEND}: hostname {hostname!r} is not a host"):
        pool.get(BACKEND, hostname)
    pool.close()


@pytest.mark.both_transports
def test_more_than_1000_ids_are_refused_before_any_call(task_backend, make_fetcher):
    fetcher = make_fetcher()
    with pytest.raises(PermanentError, match="1001 task ids asked of swarming://test-swarm; the limit is 1000"):
        fetcher.fetch_tasks(ids(*map(str, range(1001))), "p")
    assert task_backend.backend.calls == []


@pytest.mark.both_transports
def test_a_failed_call_says_the_code_the_backend_and_its_kind(task_backend, make_fetcher):
    task_backend.backend.fail_with = grpc.StatusCode.INVALID_ARGUMENT
    fetcher = make_fetcher()

    with pytest.raises(PermanentError, match=f"INVALID_ARGUMENT: FetchTasks on {BACKEND}") as raised:
        fetcher.fetch_tasks(ids("t1"), "p")

    assert not isinstance(raised.value, TransientError)


@pytest.mark.both_transports
def test_an_answer_over_the_limit_is_asked_again_in_halves(task_backend, make_fetcher):
    names = [f"t{i}" for i in range(8)]
    for name in names:
        task_backend.backend.set_task(name, pb.STARTED, 1, target=BACKEND, details=details(30_000))
    fetcher = make_fetcher(max_response_bytes=70_000)

    response = fetch_in_halves(fetcher, ids(*names), "p")

    assert [r.task.id.id for r in response.responses] == names  # in the order asked
    assert task_backend.backend.calls == [8, 4, 2, 2, 4, 2, 2]


@pytest.mark.both_transports
def test_a_task_too_big_even_alone_becomes_its_own_error_and_its_neighbours_arrive(task_backend, make_fetcher):
    task_backend.backend.set_task("small-1", pb.STARTED, 1, target=BACKEND)
    task_backend.backend.set_task("huge", pb.STARTED, 1, target=BACKEND, details=details(100_000))
    task_backend.backend.set_task("small-2", pb.STARTED, 1, target=BACKEND)
    fetcher = make_fetcher(max_response_bytes=50_000)

    response = fetch_in_halves(fetcher, ids("small-1", "huge", "small-2"), "p")

    assert [r.WhichOneof("response") for r in response.responses] == ["task", "error", "task"]
    assert response.responses[1].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "the answer for this task alone is over the size limit" in response.responses[1].error.message
    assert task_backend.backend.calls == [3, 1, 2, 1, 1]


@pytest.mark.parametrize("misbehaviour", ["ignores the size header", "gzips its answer"])
def test_an_answer_only_the_client_finds_too_big_is_asked_in_halves_too(task_backend, make_fetcher, misbehaviour):
    names = [f"t{i}" for i in range(4)]
    for name in names:
        task_backend.backend.set_task(name, pb.STARTED, 1, target=BACKEND, details=details(30_000))
    task_backend.prpc_server.honours_max_response_size = False
    task_backend.prpc_server.gzip_answers = misbehaviour == "gzips its answer"
    fetcher = make_fetcher(max_response_bytes=70_000)

    response = fetch_in_halves(fetcher, ids(*names), "p")

    assert [r.task.id.id for r in response.responses] == names
    assert task_backend.backend.calls == [4, 2, 2]


@pytest.mark.both_transports
def test_tasks_nested_as_deep_as_go_takes_arrive_and_one_nested_deeper_fails_alone(task_backend, make_fetcher):
    for name, json_levels in (("flat", 0), ("deep-45", 45), ("deep-3000", 3000), ("too-deep", 3400)):
        task_backend.backend.set_task(name, pb.STARTED, 1, target=BACKEND, details=nested_details(json_levels))
    fetcher = make_fetcher()

    response = fetcher.fetch_tasks(ids("flat", "deep-45", "deep-3000", "too-deep"), "p")

    assert [r.task.id.id for r in response.responses[:3]] == ["flat", "deep-45", "deep-3000"]
    assert response.responses[1].task.details == nested_details(45)
    (error,) = [r.error for r in response.responses if r.HasField("error")]
    assert error.code == grpc.StatusCode.DATA_LOSS.value[0] and "over 10000 levels deep" in error.message


@pytest.mark.both_transports
def test_an_answer_of_1000_tasks_near_the_details_limit_arrives_whole(task_backend, make_fetcher):
    names = [f"task-{i}" for i in range(1000)]
    big = details(49_900)
    for name in names:
        task_backend.backend.set_task(name, pb.STARTED, 1, target=BACKEND, details=big)
    fetcher = make_fetcher(deadline_seconds=60)

    response = fetcher.fetch_tasks(ids(*names), "p")

    assert response.ByteSize() > 49_000_000
    assert len(response.responses) == 1000 and task_backend.backend.calls == [1000]
