"""The three functions as deployed: runtime, entry points, ingress, accounts, resources."""

from __future__ import annotations

import ast
import re

import pytest

from tests.deploy.terraform import (
    CONFIG,
    FEEDS,
    FUNCTIONS,
    PUBLISHES,
    REPO,
    block,
    default,
    function_by_entry_point,
    ref,
    resources,
    topic_resource,
)


def test_the_three_functions_are_deployed_on_python_312():
    assert sorted(function_by_entry_point()) == sorted(FUNCTIONS)
    for body in resources("google_cloudfunctions2_function").values():
        assert block(body, "build_config")["runtime"] == "python312"
    assert not resources("google_cloudfunctions_function"), "no 1st gen functions"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_entry_point_names_a_cloud_event_handler_in_main_py(name):
    body = function_by_entry_point()[name]
    # The source zip the function is built from, and so the folder it comes from.
    source = block(body, "build_config", "source", "storage_source")
    object_ref = ref(source["object"])
    assert object_ref.startswith("google_storage_bucket_object.")
    zip_path = resources("google_storage_bucket_object")[object_ref.split(".")[1]]["source"]
    folder = re.search(r"/(\w+)\.zip$", zip_path).group(1)
    main = REPO / "functions" / folder / "main.py"
    assert main.is_file(), f"{main} does not exist"
    tree = ast.parse(main.read_text(), filename=str(main))
    handlers = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert name in handlers, f"entry point {name!r} is not a top-level function of {main}"
    decorators = {ast.unparse(decorator) for decorator in handlers[name].decorator_list}
    assert "functions_framework.cloud_event" in decorators, f"{name} is not a CloudEvent handler: {decorators}"


def test_functions_have_internal_ingress_and_no_event_trigger():
    for name, body in resources("google_cloudfunctions2_function").items():
        assert "event_trigger" not in body, f"{name}: the push subscriptions are ours, not Eventarc's"
        assert block(body, "service_config")["ingress_settings"] == "ALLOW_INTERNAL_ONLY", name
    # Nothing else serves HTTP with another ingress.
    for kind in ("google_cloud_run_service", "google_cloud_run_v2_service"):
        assert not resources(kind), f"unexpected {kind}"


def test_each_function_has_its_own_service_account():
    accounts = {
        name: ref(block(body, "service_config")["service_account_email"])
        for name, body in function_by_entry_point().items()
    }
    assert len(set(accounts.values())) == len(FUNCTIONS), accounts
    assert all(account.startswith("google_service_account.") for account in accounts.values())


# Per-function resources: one resource each, for_each over local.functions.
PER_FUNCTION = {
    "google_storage_bucket_object": "zip",
    "google_cloudfunctions2_function": "function",
    "google_service_account": "function",
    "google_pubsub_subscription": "function",
    "google_project_iam_member": "function_datastore",
    "google_cloud_run_v2_service_iam_member": "function_invoker",
    "google_pubsub_subscription_iam_member": "pubsub_agent_subscribes",
}


def test_per_function_resources_are_one_resource_over_local_functions():
    assert sorted(CONFIG["locals"]["functions"]) == sorted(FUNCTIONS)
    for kind, name in PER_FUNCTION.items():
        instances = {resource for resource in resources(kind) if resource.startswith(f"{name}[")}
        assert instances == {f'{name}["{function}"]' for function in FUNCTIONS}, kind
    for function, entry in CONFIG["locals"]["functions"].items():
        assert set(entry["publishes"]) == set(PUBLISHES[function]), function
    # The topics other than the optional builds topic are one resource too.
    assert sorted(CONFIG["locals"]["topics"]) == sorted([*FEEDS, "dead_letter"])
    assert set(resources("google_pubsub_topic")) == {topic_resource(role) for role in [*FEEDS, "builds", "dead_letter"]}


def test_function_timeout_fits_in_the_ack_deadline():
    assert default("function_timeout_seconds") <= 540
    assert default("function_timeout_seconds") < default("ack_deadline_seconds") <= 600
    for body in resources("google_cloudfunctions2_function").values():
        assert block(body, "service_config")["timeout_seconds"] == "${var.function_timeout_seconds}"


def test_the_sync_and_the_planner_get_their_own_vcpu_a_whole_one_by_default():
    cpus = {name: block(body, "service_config")["available_cpu"] for name, body in function_by_entry_point().items()}
    assert cpus == {"planner": "${var.planner_cpu}", "shard": None, "sync": "${var.sync_cpu}"}
    assert default("sync_cpu") == default("planner_cpu") == "1"
