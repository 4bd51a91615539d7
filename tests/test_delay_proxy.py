"""The delay proxy's commit gate, on the Datastore emulator: the tool the fault tests use to stop a sync mid-batch."""

from __future__ import annotations

import concurrent.futures

from google.cloud import datastore

from tests.harness import PROJECT, SETTLE_SECONDS
from tools.delay_proxy import CommitGate, DelayProxy
from tools.emulators import datastore_client as emulator_client


def counter(client: datastore.Client, name: str) -> datastore.Entity:
    entity = datastore.Entity(client.key("Counter", name))
    entity["value"] = 1
    return entity


def test_the_gate_lets_the_first_commits_through_and_holds_the_next_until_released(
    datastore_emulator, datastore_client
):
    gate = CommitGate(let_through=1)
    with (
        DelayProxy(datastore_emulator.host, delay=0, gate=gate) as link,
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
    ):
        gated = emulator_client(link.host, PROJECT)
        gated.get(datastore_client.key("Counter", "warm-up"))  # a lookup is never held
        gated.put(counter(gated, "first"))
        assert not gate.holding.is_set()

        second = pool.submit(gated.put, counter(gated, "second"))
        assert gate.holding.wait(SETTLE_SECONDS)
        held = datastore_client.get(datastore_client.key("Counter", "second"))
        gate.release()
        second.result(timeout=SETTLE_SECONDS)

    assert held is None  # not in Datastore while the gate held it
    assert datastore_client.get(datastore_client.key("Counter", "second"))["value"] == 1
    assert datastore_client.get(datastore_client.key("Counter", "first"))["value"] == 1
