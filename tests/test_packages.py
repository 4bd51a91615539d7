"""Each packaged function, unpacked alone with only its own requirements, serves real pushes.

This is what Cloud Functions does with the zips deploy/package.sh builds: a
fresh Python environment, `pip install -r requirements.txt`, and
functions-framework pointed at `main.py`. If the zip leaned on anything from
this repository, the function would fail here.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest
from buildsync.proto import buildbucket_pb2 as pb
from buildsync.stages.messages import ShardJob, SyncBatch, SyncTrigger

from tests.builds import get_build, put_build
from tests.harness import BACKEND, LONG_AGO, settings_text
from tools.emulators import wait_until
from tools.stack import FUNCTIONS, REPO, Sources


@pytest.fixture(scope="session")
def packaged(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The three zips, each unpacked into its own empty folder."""
    root = tmp_path_factory.mktemp("packages")
    settings = root / "settings.cfg"
    settings.write_text(settings_text("127.0.0.1:1"))  # replaced per test with the live backend
    subprocess.run(
        ["bash", str(REPO / "deploy" / "package.sh"), str(root / "out"), str(settings)], check=True, capture_output=True
    )
    folders = {}
    for name in FUNCTIONS:
        folder = root / name
        with zipfile.ZipFile(root / "out" / f"{name}.zip") as archive:
            archive.extractall(folder)
        folders[name] = folder
    return folders


@pytest.fixture(scope="session")
def bundle_python(packaged, tmp_path_factory) -> str:
    """A virtualenv with nothing but one zip's requirements.txt (the three are the same)."""
    requirements = {hashlib.sha256((packaged[n] / "requirements.txt").read_bytes()).hexdigest() for n in FUNCTIONS}
    assert len(requirements) == 1, "the functions' requirements differ; give each its own virtualenv"
    venv = tmp_path_factory.mktemp("bundle-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "-r", str(packaged["sync"] / "requirements.txt")],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return python


def test_each_zip_alone_handles_a_pubsub_push(packaged, bundle_python, datastore_client, make_stack, task_backend):
    for folder in packaged.values():  # point the packaged settings at this test's backend
        (folder / "settings.cfg").write_text(settings_text(task_backend.hostname, shards=1))
    put_build(datastore_client, 1, updated=LONG_AGO)
    task_backend.backend.set_task("task-1", pb.SUCCESS, 2)
    # Nothing from this repository's environment: only PATH, and what the stack sets.
    stack = make_stack(
        sources=Sources.unpacked_zips(packaged), python=bundle_python, base_env={"PATH": os.environ["PATH"]}
    )
    with stack:
        topics = stack.topics
        watch = {topic: stack.watch(topic) for topic in (topics.shard, topics.sync)}
        watch[topics.builds] = stack.builds_subscription

        def pulled(topic: str) -> list:
            return [m.message for m in stack.pull(watch[topic], max_messages=10)]

        stack.publish(topics.trigger, SyncTrigger(BACKEND, "proj").to_json())
        shard_jobs, sync_batches, notifications = [], [], []
        wait_until(
            lambda: shard_jobs.extend(pulled(topics.shard)) or shard_jobs, 120, "the packaged planner's shard job"
        )
        wait_until(lambda: sync_batches.extend(pulled(topics.sync)) or sync_batches, 120, "the packaged shard's batch")
        wait_until(
            lambda: notifications.extend(pulled(topics.builds)) or notifications,
            120,
            "the packaged sync's notification",
        )

    assert ShardJob.from_json(shard_jobs[0].data).project == "proj"
    assert SyncBatch.from_json(sync_batches[0].data).build_ids == (1,)
    # deploy/'s per-backend sync subscriptions filter on this attribute.
    assert dict(sync_batches[0].attributes) == {"backend": BACKEND, "project": "proj"}
    assert get_build(datastore_client, 1)[1].status == pb.INFRA_FAILURE
