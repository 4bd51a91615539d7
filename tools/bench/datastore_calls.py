"""Counting the Datastore work of a run: RPCs, keys looked up, mutations, and the time of each kind of RPC.

The counting itself is a gRPC client interceptor (grpc's documented
`grpc.intercept_channel`) on a channel handed to the generated client through
its documented `transport=DatastoreGrpcTransport(channel=...)` argument, so
it sees exactly what goes on the wire. What google-cloud-datastore 2.x lacks
is a way to give `datastore.Client` that generated client: it takes no
transport, channel or interceptor (`client_options` only sets the endpoint)
and builds its own in `_gapic.make_datastore_api`. `counting_client` is the
one place that bridges the gap, by setting the attribute the client's own
`_datastore_api` property caches the generated client in; nothing in the
core depends on it.
"""

from __future__ import annotations

import collections
import threading
import time
from urllib.parse import urlparse

import grpc
from google.cloud import datastore
from google.cloud.datastore_v1.services.datastore import client as gapic_client
from google.cloud.datastore_v1.services.datastore.transports import grpc as gapic_grpc

from tools.emulators import datastore_client

_METHOD_PREFIX = "/google.datastore.v1.Datastore/"


class DatastoreCallCounter(grpc.UnaryUnaryClientInterceptor):
    """Counts what each Datastore RPC asks and gets, by kind; thread-safe.

    The `*_rpc_seconds` counters add up the wall time of the calls over all
    threads, so with 16 threads they can exceed the run's wall time; compare
    them with each other and with the floor's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def reset(self) -> collections.Counter[str]:
        """The counts so far; counting starts again from zero."""
        with self._lock:
            counts, self.counts = self.counts, collections.Counter()
        return counts

    def intercept_unary_unary(self, continuation, client_call_details, request):
        started = time.perf_counter()
        call = continuation(client_call_details, request)
        try:
            response = call.result()
        except grpc.RpcError:
            return call
        seconds = time.perf_counter() - started
        method = client_call_details.method.removeprefix(_METHOD_PREFIX)
        amounts = _AMOUNTS.get(method, _other)(request, response)
        amounts[f"{_rpc_name(method, request)}_rpc_seconds"] = seconds
        with self._lock:
            self.counts.update(amounts)
        return call


def _in_transaction(request) -> tuple[bool, bool]:
    """(inside a transaction, begins one): a lookup with a transaction id, or one that begins it (begin_later)."""
    options = request.read_options
    return bool(options.transaction) or "new_transaction" in options, "new_transaction" in options


def _rpc_name(method: str, request) -> str:
    if method == "Lookup":
        return "txn_lookup" if _in_transaction(request)[0] else "plain_lookup"
    if method in ("RunQuery", "RunAggregationQuery"):
        return "query"
    return {"BeginTransaction": "begin", "Commit": "commit", "Rollback": "rollback"}.get(method, method.lower())


def _lookup(request, response) -> dict[str, float]:
    inside, begins = _in_transaction(request)
    keys = len(request.keys)
    return {
        "lookup_rpcs": 1,
        "entity_reads": keys,
        "entities_found": len(response.found),
        f"{'txn' if inside else 'plain'}_entity_reads": keys,
        "transactions": int(begins),
    }


def _query(request, response) -> dict[str, float]:
    return {"query_rpcs": 1, "query_results": len(response.batch.entity_results)}


def _aggregation(request, response) -> dict[str, float]:
    return {"query_rpcs": 1}


def _begin(request, response) -> dict[str, float]:
    return {"transactions": 1, "begin_rpcs": 1}


def _commit(request, response) -> dict[str, float]:
    # A commit that begins its own transaction (single_use) counts as one.
    return {
        "commit_rpcs": 1,
        "entity_writes": len(request.mutations),
        "transactions": int("single_use_transaction" in request),
    }


def _rollback(request, response) -> dict[str, float]:
    return {"rollbacks": 1}


def _other(request, response) -> dict[str, float]:
    return {"other_rpcs": 1}


_AMOUNTS = {
    "Lookup": _lookup,
    "RunQuery": _query,
    "RunAggregationQuery": _aggregation,
    "BeginTransaction": _begin,
    "Commit": _commit,
    "Rollback": _rollback,
}


def counting_client(project: str, emulator_host: str) -> tuple[datastore.Client, DatastoreCallCounter]:
    """A Datastore client for the emulator at `emulator_host` whose every RPC the returned counter sees."""
    client = datastore_client(emulator_host, project)
    counter = DatastoreCallCounter()
    channel = grpc.intercept_channel(grpc.insecure_channel(urlparse(f"http://{emulator_host}").netloc), counter)
    transport = gapic_grpc.DatastoreGrpcTransport(channel=channel)
    # The bridge the module docstring explains: the client has no public parameter for this.
    client._datastore_api_internal = gapic_client.DatastoreClient(transport=transport)
    return client, counter
