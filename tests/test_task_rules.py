"""docs/rules.md "Validating a fetched task": task_problem, sort_responses, compare_tasks."""

import pytest
from buildsync import wire
from buildsync.errors import BackendResponseError
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.rules import go_text, task_rules
from buildsync.rules.task_rules import TaskChange, compare_tasks, sort_responses, task_problem
from google.protobuf import struct_pb2
from google.rpc import status_pb2

from tools.go_text.cases import CASES as GO_TEXT_CASES
from tools.task_backend import nested_bytes, nested_groups

TARGET = "swarming://chromium-swarm"
OTHER = "swarming://other-swarm"


def key(task_id):
    return (TARGET, task_id)


def task(task_id="t1", update_id=1, status=pb.STARTED, **fields):
    return pb.Task(id=pb.TaskID(target=TARGET, id=task_id), update_id=update_id, status=status, **fields)


def details_of_go_text_length(length):
    """Details whose Go text form, `fields:{key:"k" value:{string_value:"x…"}}`, is `length` bytes."""
    details = struct_pb2.Struct()
    details["k"] = "x" * (length - len('fields:{key:"k" value:{string_value:""}}'))
    assert go_text.format_message(details).length == length
    return details


# --- task_problem -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [pb.SCHEDULED, pb.STARTED, pb.SUCCESS, pb.FAILURE, pb.INFRA_FAILURE, pb.CANCELED])
def test_task_with_id_update_id_and_defined_status_is_usable(status):
    assert task_problem(task(status=status)) is None


@pytest.mark.parametrize(
    "bad_task, reason",
    [
        (task(task_id=""), "task id is empty"),
        (pb.Task(update_id=1, status=pb.STARTED), "task id is empty"),
        (task(update_id=0), "update_id is 0"),
        (task(status=pb.STATUS_UNSPECIFIED), "status 0 is not a usable task status"),
        (task(status=pb.ENDED_MASK), "status 4 is not a usable task status"),
        (task(status=99), "status 99 is not a usable task status"),
        (task(status=3), "status 3 is not a usable task status"),
    ],
    ids=["empty id", "no id", "update_id 0", "STATUS_UNSPECIFIED", "ENDED_MASK", "unknown 99", "unknown 3"],
)
def test_task_problem_names_what_is_wrong(bad_task, reason):
    assert task_problem(bad_task) == reason


def test_negative_update_id_is_not_zero_so_usable():
    assert task_problem(task(update_id=-1)) is None


def test_details_size_rule_is_upstreams_whole_kib_of_go_text():
    # len(details.String())/1024 > 50: 52,223 bytes are 50 KiB in whole KiB, 52,224 are 51.
    assert task_rules.FIRST_REFUSED_DETAILS_LENGTH == 52_224
    assert task_problem(task(details=details_of_go_text_length(52_223))) is None
    problem = task_problem(task(details=details_of_go_text_length(52_224)))
    assert problem == "details are 52,224 bytes in Go's text form, over Buildbucket's 50 KiB limit"


@pytest.mark.parametrize(
    "case, binary_size, usable",
    [("issue: one value of 51,000 characters", 51_017, True), ("issue: 400 list dimensions", 20_024, False)],
)
def test_details_size_rule_follows_the_text_not_the_binary_size(case, binary_size, usable):
    details = struct_pb2.Struct.FromString(GO_TEXT_CASES[case])
    assert details.ByteSize() == binary_size
    assert (task_problem(task(details=details)) is None) is usable


@pytest.mark.parametrize(
    "make, levels, usable",
    [
        (lambda: nested_groups(8_999), 9_000, True),  # 36 KB of text
        (lambda: nested_bytes(1_305), 3_916, True),  # the deepest such JSON object Go takes: 52,200 bytes of text
        (lambda: nested_bytes(3_000), 9_001, False),  # 120,000 bytes of text, as Go measures it too
    ],
    ids=["groups 9,000 levels", "JSON 1,305 levels", "JSON 3,000 levels"],
)
def test_details_of_any_depth_go_decodes_are_measured_by_their_text(make, levels, usable):
    details = wire.decode(struct_pb2.Struct, make())
    assert wire.nesting_depth(struct_pb2.Struct.DESCRIPTOR, details.SerializeToString(), 20_000) == levels
    problem = task_problem(task(details=details))
    assert problem is None if usable else problem.startswith("details are over 52,224 bytes in Go's text form")


def test_details_size_rule_stops_measuring_past_the_limit():
    details = struct_pb2.Struct()
    details["l"] = [None] * 100_000  # 3 MB of text from 400 KB
    assert task_problem(task(details=details)) == (
        "details are over 52,224 bytes in Go's text form, over Buildbucket's 50 KiB limit"
    )


def test_details_size_rule_counts_utf8_bytes_as_go_does():
    details = struct_pb2.Struct()
    details["k"] = "é" * 26_100  # 26,100 characters, 52,200 bytes, 52,240 with the rest of the text
    assert "52,240 bytes" in task_problem(task(details=details))


def test_details_size_rule_accepts_a_task_without_details():
    assert task_problem(task()) is None


# --- sort_responses -------------------------------------------------------------------------


def ids(*names):
    return [pb.TaskID(target=TARGET, id=name) for name in names]


def with_task(t):
    return pb.FetchTasksResponse.Response(task=t)


def with_error(code, message):
    return pb.FetchTasksResponse.Response(error=status_pb2.Status(code=code, message=message))


def response(*items):
    return pb.FetchTasksResponse(responses=list(items))


@pytest.mark.parametrize("asked, got", [(2, 1), (1, 2), (3, 0), (0, 1)])
def test_response_count_mismatch_raises_naming_both_counts(asked, got):
    requested = ids(*[f"t{i}" for i in range(asked)])
    items = [with_task(task(f"t{i}")) for i in range(got)]

    with pytest.raises(BackendResponseError) as raised:
        sort_responses(requested, response(*items))

    assert f"{got} responses for {asked} task ids" in str(raised.value)


def test_no_ids_and_no_responses_is_empty():
    fetched = sort_responses([], response())

    assert fetched.usable == {}
    assert fetched.rejected == {}


def test_valid_tasks_are_usable_by_their_id():
    t1, t2 = task("t1", update_id=5), task("t2", status=pb.SUCCESS)

    fetched = sort_responses(ids("t1", "t2"), response(with_task(t1), with_task(t2)))

    assert fetched.usable == {key("t1"): t1, key("t2"): t2}
    assert fetched.rejected == {}


def test_error_response_rejects_the_id_at_its_index_with_code_and_message():
    fetched = sort_responses(ids("t1", "t2"), response(with_task(task("t1")), with_error(5, "no such task")))

    assert set(fetched.usable) == {key("t1")}
    assert fetched.rejected == {key("t2"): "backend error 5: no such task"}


def test_response_with_neither_task_nor_error_is_rejected():
    fetched = sort_responses(ids("t1"), response(pb.FetchTasksResponse.Response()))

    assert fetched.usable == {}
    assert fetched.rejected == {key("t1"): "response has neither task nor error"}


def test_task_for_an_id_not_asked_for_is_rejected_under_the_asked_id():
    fetched = sort_responses(ids("t1"), response(with_task(task("intruder"))))

    assert fetched.usable == {}
    assert set(fetched.rejected) == {key("t1")}
    assert "'intruder'" in fetched.rejected[key("t1")]
    assert "not asked for" in fetched.rejected[key("t1")]


def test_invalid_task_is_rejected_with_its_problem():
    fetched = sort_responses(ids("t1", "t2"), response(with_task(task("t1", update_id=0)), with_task(task("t2"))))

    assert set(fetched.usable) == {key("t2")}
    assert fetched.rejected == {key("t1"): "update_id is 0"}


def test_task_with_empty_id_is_rejected_under_the_asked_id():
    fetched = sort_responses(ids("t1"), response(with_task(task(""))))

    assert fetched.usable == {}
    assert key("t1") in fetched.rejected


def test_tasks_name_themselves_so_order_does_not_matter():
    t1, t2 = task("t1"), task("t2")

    fetched = sort_responses(ids("t1", "t2"), response(with_task(t2), with_task(t1)))

    assert fetched.usable == {key("t1"): t1, key("t2"): t2}
    assert fetched.rejected == {}


def test_mixed_batch_sorts_every_response():
    requested = ids("ok", "err", "empty", "bad", "wrong")
    fetched = sort_responses(
        requested,
        response(
            with_task(task("ok")),
            with_error(14, "unavailable"),
            pb.FetchTasksResponse.Response(),
            with_task(task("bad", status=pb.ENDED_MASK)),
            with_task(task("elsewhere")),
        ),
    )

    assert set(fetched.usable) == {key("ok")}
    assert set(fetched.rejected) == {key("err"), key("empty"), key("bad"), key("wrong")}
    assert all(reason for reason in fetched.rejected.values())


# --- compare_tasks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stored, fetched, change",
    [
        (5, 4, TaskChange.STALE),
        (5, 1, TaskChange.STALE),
        (5, 5, TaskChange.UNCHANGED),
        (0, 0, TaskChange.UNCHANGED),
        (5, 6, TaskChange.NEWER),
        (0, 1, TaskChange.NEWER),
        (2**62, 2**62 + 1, TaskChange.NEWER),
    ],
)
def test_compare_tasks_by_update_id(stored, fetched, change):
    assert compare_tasks(task(update_id=stored), task(update_id=fetched)) is change


def test_compare_tasks_ignores_everything_but_update_id():
    stored = task(update_id=3, status=pb.STARTED)
    fetched = task(update_id=3, status=pb.SUCCESS, summary_markdown="done")

    assert compare_tasks(stored, fetched) is TaskChange.UNCHANGED


def test_a_task_response_with_an_empty_id_is_rejected_as_such():
    requested = [pb.TaskID(target="swarming://s", id="t1")]
    response = pb.FetchTasksResponse()
    response.responses.add().task.CopyFrom(pb.Task(status=pb.STARTED, update_id=1))

    fetched = sort_responses(requested, response)

    assert fetched.rejected == {("swarming://s", "t1"): "task id is empty"}


def test_tasks_are_keyed_by_target_and_id():
    same_id = [pb.TaskID(target=TARGET, id="t1"), pb.TaskID(target=OTHER, id="t1")]
    mine, theirs = task("t1", update_id=1), pb.Task(id=same_id[1], update_id=2, status=pb.STARTED)

    fetched = sort_responses(same_id, response(with_task(mine), with_task(theirs)))

    assert fetched.usable == {(TARGET, "t1"): mine, (OTHER, "t1"): theirs}


def test_a_task_of_another_backend_with_an_asked_id_is_not_taken_for_it():
    intruder = pb.Task(id=pb.TaskID(target=OTHER, id="t1"), update_id=9, status=pb.SUCCESS)

    fetched = sort_responses(ids("t1"), response(with_task(intruder)))

    assert fetched.usable == {}
    assert f"'t1' on '{OTHER}', which was not asked for" in fetched.rejected[key("t1")]


def test_a_task_without_a_target_is_the_asked_backends():
    bare = pb.Task(id=pb.TaskID(id="t1"), update_id=1, status=pb.STARTED)

    fetched = sort_responses(ids("t1"), response(with_task(bare)))

    assert fetched.usable == {key("t1"): bare}


@pytest.mark.parametrize("field", ["link", "summary_html", "summary_markdown"])
def test_a_long_text_field_is_no_reason_to_refuse_a_task_as_upstream_refuses_none(field):
    assert task_problem(task(**{field: "x" * 200_000})) is None


def test_a_long_task_id_is_no_reason_to_refuse_a_task_either():
    assert task_problem(task(task_id="t" * 5_000)) is None


def unknown_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field the Task proto does not declare, as a backend may send it."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_a_task_is_not_bounded_as_a_whole_either_storage_decides_what_fits():
    bloated = task()
    bloated.MergeFromString(unknown_field(999, b"x" * 300_000))
    assert task_problem(bloated) is None
