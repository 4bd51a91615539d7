"""Session-wide emulators and a TaskBackend server; per-test clean state.

Each emulator starts once per session on a free port, when a test first needs
it, and is stopped at the end. When an emulator cannot start (gcloud or its
component missing) the tests that need it are skipped with a loud warning and
the reason; every other test still runs. Nothing here writes os.environ:
clients are made for the emulator's host, and child processes get
`datastore_env`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import hypothesis
import pytest
from buildsync.edge import environment
from buildsync.edge.runtime import runtime_from_env
from buildsync.remote.backend import BackendPool, TaskFetcher
from buildsync.remote.backend_options import PRPC
from buildsync.rules.settings import BackendSettings, parse_settings
from buildsync.stages.messages import SyncBatch
from buildsync.stages.report import SyncReport
from buildsync.stages.sync import SyncOptions, sync_batch
from buildsync.store.transactions import TransactionBegin
from google.cloud import datastore

from tests.harness import (
    BACKEND,
    HUNG,
    LATER,
    PLANNED_AT,
    PROJECT,
    TRANSPORTS,
    Subscribed,
    backend_pool,
    backend_text,
    settings_text,
    skip_loudly,
    start_emulator,
)
from tools.cloud_tasks import CloudTasksServer
from tools.emulators import DATASTORE_KINDS, Emulator, EmulatorUnavailable
from tools.emulators import datastore_client as emulator_client
from tools.redis_server import RedisServer
from tools.resultdb_recorder import ResultDBRecorder
from tools.stack import LocalStack
from tools.task_backend import TaskBackendServer

# Property tests share two cores with Java emulators: a slow example is not a failure.
hypothesis.settings.register_profile("buildsync", deadline=None)
hypothesis.settings.load_profile("buildsync")

# The database of tests not marked both_emulators: the legacy emulator, the
# faster of the two on two cores. Tests of the integration and fault suites run
# on both (pytest -k firestore or -k "not firestore" picks one).
DEFAULT_DATASTORE = "datastore"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_emulators") and "datastore_kind" in metafunc.fixturenames:
        metafunc.parametrize("datastore_kind", DATASTORE_KINDS, indirect=True)
    if metafunc.definition.get_closest_marker("both_transports") and "transport" in metafunc.fixturenames:
        metafunc.parametrize("transport", TRANSPORTS, indirect=True)


def _running(kind: str):
    emulator = start_emulator(kind)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def legacy_datastore_emulator():
    yield from _running("datastore")


@pytest.fixture(scope="session")
def firestore_emulator():
    yield from _running("firestore")


@pytest.fixture(scope="session")
def pubsub_emulator():
    yield from _running("pubsub")


@pytest.fixture
def datastore_kind(request) -> str:
    """Which Datastore emulator the test runs on."""
    return getattr(request, "param", DEFAULT_DATASTORE)


@pytest.fixture
def datastore_emulator(request, datastore_kind) -> Emulator:
    fixture = {"datastore": "legacy_datastore_emulator", "firestore": "firestore_emulator"}[datastore_kind]
    return request.getfixturevalue(fixture)


@pytest.fixture
def datastore_env(datastore_emulator) -> dict[str, str]:
    """What a child process (the CLI, a function) needs to use the test's Datastore."""
    return {"GOOGLE_CLOUD_PROJECT": PROJECT, **datastore_emulator.env}


@pytest.fixture
def transaction_begin(datastore_emulator) -> TransactionBegin:
    """How in-process code begins its transactions on the test's emulator (as a child process would)."""
    return environment.transaction_begin(datastore_emulator.env)


@pytest.fixture
def datastore_client(datastore_emulator) -> datastore.Client:
    """A client on an emptied emulator."""
    datastore_emulator.reset()
    return emulator_client(datastore_emulator.host, PROJECT)


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server for the session on a free port, or a loud skip when it is not installed."""
    try:
        server = RedisServer().start()
    except EmulatorUnavailable as error:
        skip_loudly(f"REDIS-SERVER IS NOT AVAILABLE; the dscache tests are skipped: {error}")
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    """A client of the session's redis-server, emptied for the test."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def cloud_tasks():
    """A real Cloud Tasks server on loopback with Buildbucket's queues; `.servicer` records every request."""
    server = CloudTasksServer().start()
    yield server
    server.stop()


@pytest.fixture
def task_backend():
    """A real TaskBackend on loopback: pRPC at `.hostname`, gRPC at `.grpc_hostname`; `.backend` is the fake."""
    server = TaskBackendServer().start()
    yield server
    server.stop()


@pytest.fixture
def hung_backend():
    """A second real TaskBackend that takes every FetchTasks call and never answers it, until the test ends."""
    server = TaskBackendServer()
    server.backend.hang = threading.Event()
    server.start()
    yield server
    server.stop()  # answers the calls still waiting


@pytest.fixture
def two_backends_settings(tmp_path, task_backend, hung_backend):
    """Settings of two full-mode backends of 4 shards: the hung one (HUNG), then the test TaskBackend (BACKEND).

    The hung one first, so that its batches are planned, published and pushed first.
    """
    path = tmp_path / "two-backends.cfg"
    path.write_text(backend_text(HUNG, hung_backend.hostname, 4) + settings_text(task_backend.hostname, shards=4))
    return path


@pytest.fixture
def transport(request) -> str:
    """How in-process syncs call the backend: pRPC, as Buildbucket does, unless a test is marked both_transports."""
    return getattr(request, "param", PRPC)


@pytest.fixture
def pool(transport):
    """The BackendPool of in-process syncs, on the test's transport, closed after the test."""
    backends = backend_pool(transport, deadline_seconds=20)
    yield backends
    backends.close()


@pytest.fixture
def make_fetcher(task_backend, transport):
    """Makes the test TaskBackend's fetcher as a deployment does (a BackendPool with `pool_options`), on the
    test's transport; every pool is closed after the test."""
    pools: list[BackendPool] = []

    def make(**pool_options) -> TaskFetcher:
        pools.append(backend_pool(transport, **pool_options))
        return pools[-1].get(BACKEND, task_backend.hostname_for(transport))

    yield make
    for made in pools:
        made.close()


@pytest.fixture
def fetcher(pool, task_backend, transport) -> TaskFetcher:
    """The test TaskBackend's fetcher from the test's pool."""
    return pool.get(BACKEND, task_backend.hostname_for(transport))


@pytest.fixture
def backend(make_settings) -> BackendSettings:
    """The settings of the test TaskBackend's backend."""
    return make_settings().backend(BACKEND)


@pytest.fixture
def sync_options(transaction_begin) -> Callable[..., SyncOptions]:
    """SyncOptions bound to the test's emulator: its transactions begin as they must there (`transaction_begin`)."""
    return functools.partial(SyncOptions, transaction_begin=transaction_begin)


@pytest.fixture
def sync(datastore_client, fetcher, backend, sync_options) -> Callable[..., SyncReport]:
    """Syncs `build_ids` of the test backend's "proj" in one batch planned at PLANNED_AT, the clock at LATER.

    `client`, `fetcher` and `settings` replace the test's own; other keywords are SyncOptions.
    """

    def run(build_ids, *, client=None, fetcher=fetcher, settings=backend, **options) -> SyncReport:
        batch = SyncBatch(BACKEND, "proj", tuple(build_ids), PLANNED_AT)
        options = sync_options(**{"clock": lambda: LATER, **options})
        return sync_batch(client or datastore_client, fetcher, settings, batch, options)

    return run


@pytest.fixture
def make_settings(task_backend, transport):
    """Settings whose backend is the test TaskBackend's address for the test's transport."""

    def make(**options):
        return parse_settings(settings_text(task_backend.hostname_for(transport), **options), "text")

    return make


@pytest.fixture
def settings_file(tmp_path, task_backend, recorder):
    """Settings of the test TaskBackend, 3 shards, whose ResultDB host is the test's recorder."""
    path = tmp_path / "settings.cfg"
    path.write_text(settings_text(task_backend.hostname, shards=3, resultdb=recorder.hostname))
    return path


@pytest.fixture
def make_stack(datastore_emulator, datastore_env, pubsub_emulator, tmp_path):
    """An unstarted LocalStack on the test's emulators; use it as `with make_stack(settings) as stack:`."""

    def make(settings_path=None, *, datastore_host: str | None = None, extra_env=None, **options) -> LocalStack:
        return LocalStack(
            PROJECT,
            datastore_host or datastore_emulator.host,
            pubsub_emulator.host,
            settings_path,
            log_dir=options.pop("log_dir", tmp_path),
            extra_env={**datastore_env, **(extra_env or {})},
            **options,
        )

    return make


@pytest.fixture
def recorder():
    """A real ResultDB Recorder, served over pRPC on loopback, that records FinalizeInvocation calls."""
    server = ResultDBRecorder().start()
    yield server
    server.stop()


@pytest.fixture
def builds_topic(pubsub_emulator, monkeypatch):
    """The builds topic on the Pub/Sub emulator, with a subscription that sees everything on it."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    return Subscribed("builds")


@pytest.fixture
def callback_topic(builds_topic):
    """A build's callback topic (pubsub_callback.topic), subscribed."""
    return Subscribed("callback")


@pytest.fixture
def runtime(datastore_client, datastore_env, builds_topic, settings_file, monkeypatch):
    """Makes the functions' Runtime on the test's emulators, with extra environment variables if given."""
    for name, value in datastore_env.items():  # the clients runtime_from_env makes read these
        monkeypatch.setenv(name, value)
    env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "BUILDSYNC_SETTINGS": str(settings_file),
        "BUILDSYNC_BUILDS_TOPIC": builds_topic.topic,
        "BUILDSYNC_SHARD_TOPIC": Subscribed("shard").topic,  # the planner's sweep runs after it plans
    }

    def make(**extra: str):
        return runtime_from_env({**env, **extra})

    return make
