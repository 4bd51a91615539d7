"""Static checks of the Google Cloud deployment in deploy/.

The Terraform files are parsed with python-hcl2 (no provider, no network), the
Datastore queries are rebuilt from the code itself and matched against the
composite indexes, and deploy/package.sh is run to check what the zips hold.
"""

from __future__ import annotations

import ast
import datetime
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import hcl2
import pytest
from buildsync import env
from buildsync.ending import handoff
from buildsync.stages import planner, shard, status
from buildsync.stages.messages import ShardJob
from buildsync.store import outbox
from google.auth.credentials import AnonymousCredentials
from google.cloud import datastore

REPO = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
FUNCTIONS = ("planner", "shard", "sync")
# Which topic feeds which function (by role: the key of local.topics).
FEEDS = {"trigger": "planner", "shard": "shard", "sync": "sync"}
# Which topics each function publishes to, and the variable that tells it.
PUBLISHES = {
    "planner": {
        "BUILDSYNC_SHARD_TOPIC": 'google_pubsub_topic.topic["shard"]',
        "BUILDSYNC_BUILDS_TOPIC": "local.builds_topic_id",
    },
    "shard": {"BUILDSYNC_SYNC_TOPIC": 'google_pubsub_topic.topic["sync"]'},
    "sync": {"BUILDSYNC_BUILDS_TOPIC": "local.builds_topic_id"},
}


# The builds topic is optional and a resource of its own; every other topic
# is an instance of google_pubsub_topic.topic (for_each over local.topics).
def topic_resource(role: str) -> str:
    return "builds" if role == "builds" else f'topic["{role}"]'


def topic_ref(role: str) -> str:
    return f"google_pubsub_topic.{topic_resource(role)}"


PUBLIC_PRINCIPALS = ("allusers", "allauthenticatedusers")


# --- loading -----------------------------------------------------------------


def _load_hcl(path: pathlib.Path) -> dict:
    with path.open() as handle:
        options_type = getattr(hcl2, "SerializationOptions", None)
        if options_type is None:  # python-hcl2 < 8 gives plain values already
            return hcl2.load(handle)
        options = options_type(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
        return hcl2.load(handle, serialization_options=options)


def _load_config(variables: dict | None = None) -> dict:
    """The configuration, with for_each resources expanded for the variables' defaults, or `variables`."""
    config: dict = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "templates": {}}
    files = sorted(DEPLOY.glob("*.tf"))
    assert files, "no Terraform files in deploy/"
    for path in files:
        doc = _load_hcl(path)
        for section in ("resource", "data"):
            for item in doc.get(section, []):
                for kind, named in item.items():
                    for name, body in named.items():
                        assert name not in config[section].setdefault(kind, {}), f"{kind}.{name} declared twice"
                        config[section][kind][name] = body
        for section in ("variable", "output"):
            for item in doc.get(section, []):
                config[section].update(item)
        for item in doc.get("locals", []):
            config["locals"].update(item)
    for name, value in (variables or {}).items():
        config["variable"][name]["default"] = value
    _expand_for_each(config)
    return config


# --- for_each ----------------------------------------------------------------
#
# Per-function resources are one resource each with for_each over
# local.functions (or over local.publisher_grants, derived from it). The checks
# below address every instance as its own resource, named as Terraform names
# it (`function["planner"]`), with each.key, each.value and each.value.*
# substituted.

_EACH_VALUE = re.compile(r"each\.value\.([a-z0-9_]+)")
_MERGE = re.compile(r"\$\{merge\(((?:local|each\.value)\.[a-z0-9_]+), ((?:local|each\.value)\.[a-z0-9_]+)\)\}")
# local.publisher_grants: one entry "FUNCTION/VARIABLE" per topic in each
# function's publishes map.
_PUBLISHER_GRANTS = (
    "${merge([for name, function in local.functions : {for variable, topic in function.publishes : "
    '"${name}/${variable}" => {function = name, topic = topic}}] ...)}'
)


# local.subscriptions: one per function, then one per backend of
# var.sync_backends (local.sync_backend_slugs names them).
_SUBSCRIPTIONS = (
    "${merge({for name, function in local.functions : name => {function = name, filter = function.filter}}, "
    '{for backend, slug in local.sync_backend_slugs : "sync-${slug}" => '
    '{function = "sync", filter = "attributes.backend = \\"${backend}\\""}})}'
)
# local.deliveries: every subscription of local.subscriptions as a push to
# its function, then the BigQuery export's (local.bigquery_subscription) when
# var.bigquery_dataset is set.
_DELIVERIES = (
    "${merge({for name, subscription in local.subscriptions : name => "
    "{topic = local.functions[subscription.function].topic, filter = subscription.filter, "
    "ack_deadline_seconds = var.ack_deadline_seconds, push = [subscription.function], bigquery = []}}, "
    "local.bigquery_enabled ? local.bigquery_subscription : {})}"
)
_SYNC_BACKEND_SLUGS = (
    '${{for backend in var.sync_backends : backend => trim(replace(lower(backend), "/[^a-z0-9]+/", "-"), "-")}}'
)
_SYNC_OTHER_BACKENDS_FILTER = (
    '${join(" AND ", [for backend in var.sync_backends : "NOT attributes.backend = \\"${backend}\\""])}'
)
# Resources whose bodies are templates no simple substitution turns into
# values: kept as they are in CONFIG["templates"] and checked as such.
_TEMPLATES = {"google_logging_metric"}


def sync_backend_slug(backend: str) -> str:
    """What local.sync_backend_slugs makes of a backend target."""
    return re.sub(r"[^a-z0-9]+", "-", backend.lower()).strip("-")


def _computed_local(config: dict, name: str):
    """The value of a local built from others, for the locals this deployment computes."""
    value = config["locals"][name]
    functions = config["locals"]["functions"]
    backends = config["variable"]["sync_backends"]["default"]
    if value == _PUBLISHER_GRANTS:
        return {
            f"{name}/{variable}": {"function": name, "topic": topic}
            for name, function in functions.items()
            for variable, topic in function["publishes"].items()
        }
    if value == _SUBSCRIPTIONS:
        assert config["locals"]["sync_backend_slugs"] == _SYNC_BACKEND_SLUGS
        return {
            **{name: {"function": name, "filter": function["filter"]} for name, function in functions.items()},
            **{
                f"sync-{sync_backend_slug(backend)}": {
                    "function": "sync",
                    "filter": f'attributes.backend = "{backend}"',
                }
                for backend in backends
            },
        }
    if value == _DELIVERIES:
        assert config["locals"]["bigquery_enabled"] == '${var.bigquery_dataset != ""}'
        pushes = {
            name: {
                "topic": functions[subscription["function"]]["topic"],
                "filter": subscription["filter"],
                "ack_deadline_seconds": "${var.ack_deadline_seconds}",
                "push": [subscription["function"]],
                "bigquery": [],
            }
            for name, subscription in _computed_local(config, "subscriptions").items()
        }
        export = config["locals"]["bigquery_subscription"] if config["variable"]["bigquery_dataset"]["default"] else {}
        return {**pushes, **export}
    if value == _SYNC_OTHER_BACKENDS_FILTER:
        return " AND ".join(f'NOT attributes.backend = "{backend}"' for backend in backends)
    return value


def _for_each_map(config: dict, source: str) -> dict:
    # `var.FLAG ? local.NAME : {}`, `var.V == "x" ? …` and `var.V != "x" ? …` are
    # evaluated with the variable's default.
    switch = r'\$\{var\.([a-z0-9_]+)(?: (==|!=) "([^"]*)")? \? local\.([a-z0-9_]+) : \{\}\}'
    if switched := re.fullmatch(switch, source):
        value = config["variable"][switched.group(1)]["default"]
        operator, literal = switched.group(2), switched.group(3)
        on = bool(value) if operator is None else (value == literal) == (operator == "==")
        return _for_each_map(config, f"${{local.{switched.group(4)}}}") if on else {}
    match = re.fullmatch(r"\$\{local\.([a-z0-9_]+)\}", source)
    assert match, f"for_each must name a local: {source!r}"
    value = _computed_local(config, match.group(1))
    assert isinstance(value, dict), f"local.{match.group(1)} is not a literal map: {value!r}"
    return value


_FUNCTION_FIELD = re.compile(r'local\.functions\["([a-z0-9_]+)"\]\.([a-z0-9_]+)')


def _function_fields(value: str, locals_: dict):
    """`value` with each `local.functions["F"].FIELD` it names replaced by that field."""

    def field(match: re.Match) -> str:
        item = locals_["functions"][match.group(1)][match.group(2)]
        inner = re.fullmatch(r"\$\{(.*)\}", item)
        return inner.group(1) if inner else json.dumps(item)

    if whole := re.fullmatch(r"\$\{" + _FUNCTION_FIELD.pattern + r"\}", value):
        return locals_["functions"][whole.group(1)][whole.group(2)]
    return _FUNCTION_FIELD.sub(field, value)


def _substitute(value, key: str, each: dict, locals_: dict):
    if isinstance(value, dict):
        return {name: _substitute(item, key, each, locals_) for name, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, key, each, locals_) for item in value]
    if not isinstance(value, str):
        return value
    value = _substitute_each(value, key, each, locals_)
    return _function_fields(value, locals_) if isinstance(value, str) else value


def _substitute_each(value: str, key: str, each: dict, locals_: dict):
    def resolve(expression: str):
        if expression.startswith("local."):
            return locals_[expression.split(".", 1)[1]]
        return each[expression.split(".", 2)[2]]

    if match := _MERGE.fullmatch(value):
        first, second = resolve(match.group(1)), resolve(match.group(2))
        assert isinstance(first, dict) and isinstance(second, dict), value
        return {**first, **second}
    if value == "${each.value}":
        return each
    if match := re.fullmatch(r"\$\{each\.value\.([a-z0-9_]+)\}", value):
        return each[match.group(1)]
    value = value.replace("${each.key}", key)
    value = re.sub(r"\$\{each\.value\.([a-z0-9_]+)\}", lambda m: str(each[m.group(1)]), value)

    def bare(match: re.Match) -> str:
        item = each[match.group(1)]
        assert isinstance(item, str), f"each.value.{match.group(1)} is not a string"
        inner = re.fullmatch(r"\$\{(.*)\}", item)
        return inner.group(1) if inner else json.dumps(item)

    value = value.replace("each.key", json.dumps(key))
    value = _EACH_VALUE.sub(bare, value)
    assert "each." not in value, value
    return value


def _expand_dynamic(body: dict, locals_: dict) -> dict:
    """`body` with each `dynamic "NAME"` block also written out: one NAME block per item of its for_each list."""

    def substitute(value, name: str, item):
        if isinstance(value, dict):
            return {key: substitute(inner, name, item) for key, inner in value.items()}
        if isinstance(value, list):
            return [substitute(inner, name, item) for inner in value]
        if not isinstance(value, str):
            return value
        if value == f"${{{name}.value}}":
            return item
        return _function_fields(value.replace(f"{name}.value", json.dumps(item)), locals_)

    expanded = dict(body)
    for dynamic in body.get("dynamic", []):
        for name, spec in dynamic.items():
            items = spec["for_each"]
            assert isinstance(items, list), f"dynamic {name}: for_each must come to a list: {items!r}"
            [content] = spec["content"]
            blocks = [substitute(content, name, item) for item in items]
            if blocks:
                expanded[name] = expanded.get(name, []) + blocks
    return expanded


def _expand_for_each(config: dict) -> None:
    for kind in _TEMPLATES & set(config["resource"]):
        config["templates"][kind] = config["resource"].pop(kind)
    for kind, named in config["resource"].items():
        for name, body in list(named.items()):
            if "for_each" not in body:
                continue
            del named[name]
            rest = {attribute: item for attribute, item in body.items() if attribute != "for_each"}
            for key, each in _for_each_map(config, body["for_each"]).items():
                instance = f'{name}["{key}"]'
                assert instance not in named, f"{kind}.{instance} declared twice"
                named[instance] = _expand_dynamic(_substitute(rest, key, each, config["locals"]), config["locals"])


CONFIG = _load_config()


def resources(kind: str) -> dict[str, dict]:
    return CONFIG["resource"].get(kind, {})


def block(body: dict, *path: str) -> dict:
    """The one nested block at `path` (blocks parse as lists of dicts)."""
    for name in path:
        value = body.get(name)
        assert isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict), f"expected one {name} block"
        body = value[0]
    return body


_REF = re.compile(
    r"\b((?:data\.)?google_[a-z0-9_]+\.[a-z0-9_]+(?:\[\"[^\"\]]+\"\])?|var\.[a-z0-9_]+|local\.[a-z0-9_]+)"
)


def refs(value) -> set[str]:
    """The resources, variables and locals an expression names.

    For example `google_x.y`, `google_x.y["key"]`, `var.z` and `local.w`.
    """
    return set(_REF.findall(str(value)))


def ref(value) -> str:
    found = refs(value)
    assert len(found) == 1, f"expected one reference in {value!r}, found {sorted(found)}"
    return found.pop()


def default(variable: str):
    return CONFIG["variable"][variable]["default"]


def walk(value, path="") -> list[tuple[str, object]]:
    """Every (path, leaf) in a parsed configuration, keys included as leaves."""
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.append((f"{path}/{key}", key))
            out += walk(item, f"{path}/{key}")
        return out
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in walk(item, f"{path}[{index}]")]
    return [(path, value)]


def function_by_entry_point() -> dict[str, dict]:
    functions = resources("google_cloudfunctions2_function")
    found = {block(body, "build_config")["entry_point"]: body for body in functions.values()}
    assert len(found) == len(functions), "two functions share an entry point"
    return found


def function_resource(name: str) -> str:
    """The Terraform name of the function whose entry point is `name`."""
    for resource, body in resources("google_cloudfunctions2_function").items():
        if block(body, "build_config")["entry_point"] == name:
            return resource
    raise AssertionError(f"no google_cloudfunctions2_function with entry_point {name!r}")


# --- functions ----------------------------------------------------------------


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


# --- topics and subscriptions ---------------------------------------------------


def subscriptions_by_topic() -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for body in resources("google_pubsub_subscription").values():
        found.setdefault(ref(body["topic"]), []).append(body)
    return found


@pytest.mark.parametrize("topic,function", FEEDS.items())
def test_topic_feeds_the_function_that_reads_it(topic, function):
    subscriptions = subscriptions_by_topic()[topic_ref(topic)]
    assert len(subscriptions) == 1, f"{topic}: expected one subscription (no sync_backends by default)"
    push = block(subscriptions[0], "push_config")
    target = f"google_cloudfunctions2_function.{function_resource(function)}"
    assert refs(push["push_endpoint"]) >= {target}, push["push_endpoint"]
    assert not {r for r in refs(push["push_endpoint"]) if r.startswith("google_cloudfunctions2_function.")} - {target}
    token = block(push, "oidc_token")
    assert ref(token["service_account_email"]) == "google_service_account.push_invoker"
    assert ref(token["audience"]) == target


@pytest.mark.parametrize("topic", [*FEEDS, "builds", "dead_letter"])
def test_topic_names_come_from_variables(topic):
    body = resources("google_pubsub_topic")[topic_resource(topic)]
    assert body["name"] == f"${{var.{topic}_topic}}"
    assert default(f"{topic}_topic") == f"buildsync-{topic.replace('_', '-')}"
    assert f"{topic}_topic" in CONFIG["output"], f"no output for the {topic} topic"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_publish_where_the_next_stage_reads(function):
    body = function_by_entry_point()[function]
    env = block(body, "service_config")["environment_variables"]
    assert isinstance(env, dict), "environment_variables must be a literal map"
    assert env["GOOGLE_CLOUD_PROJECT"] == "${var.project}"
    for variable, topic in PUBLISHES[function].items():
        assert ref(env[variable]) == topic, f"{function}: {variable} = {env[variable]}"
    others = {name for name in env if name.endswith("_TOPIC")} - set(PUBLISHES[function])
    assert not others, f"{function} gets topics it does not publish to: {others}"


def test_builds_topic_is_the_configured_one():
    expression = CONFIG["locals"]["builds_topic_id"]
    assert "google_pubsub_topic.builds" in refs(expression) and "var.builds_topic" in refs(expression)


def test_every_subscription_has_retry_and_dead_letter_policies():
    dead_letter = topic_ref("dead_letter")
    subscriptions = resources("google_pubsub_subscription")
    assert subscriptions
    for name, body in subscriptions.items():
        retry = block(body, "retry_policy")
        assert retry["minimum_backoff"] and retry["maximum_backoff"], name
        if ref(body["topic"]) == dead_letter:
            # The dead-letter topic's own subscription ends the chain: dead
            # letters wait there for an operator, nothing pushes them on.
            assert "push_config" not in body, f"{name}: the dead-letter subscription is a pull subscription"
            continue
        policy = block(body, "dead_letter_policy")
        assert ref(policy["dead_letter_topic"]) == dead_letter, name
        assert policy["max_delivery_attempts"] == "${var.max_delivery_attempts}", name
        assert block(body, "expiration_policy")["ttl"] == "", f"{name} must never expire"
    assert 5 <= default("max_delivery_attempts") <= 100


def test_the_dead_letter_topic_has_its_own_subscription():
    assert subscriptions_by_topic().get(topic_ref("dead_letter")), "dead letters would be lost"


def test_topics_are_encrypted_with_a_rotated_customer_key():
    for name, body in resources("google_pubsub_topic").items():
        assert ref(body["kms_key_name"]).startswith("google_kms_crypto_key."), name
    for name, body in resources("google_kms_crypto_key").items():
        period = body["rotation_period"]
        seconds = (
            int(default("kms_rotation_period")[:-1]) if period == "${var.kms_rotation_period}" else int(period[:-1])
        )
        assert 86400 <= seconds <= 90 * 86400, name


def test_scheduler_publishes_an_empty_trigger_every_minute():
    jobs = resources("google_cloud_scheduler_job")
    assert len(jobs) == 1
    target = block(next(iter(jobs.values())), "pubsub_target")
    assert ref(target["topic_name"]) == topic_ref("trigger")
    data = re.sub(r"\s+", "", str(target["data"]))
    assert data == '${base64encode("{}")}', target["data"]  # {} means every backend and project
    assert default("schedule") == "* * * * *"


# --- IAM ------------------------------------------------------------------------


def test_no_public_principal_anywhere():
    for section in ("resource", "data", "variable", "output", "locals"):
        for path, leaf in walk(CONFIG[section]):
            text = str(leaf).lower()
            assert not any(p in text for p in PUBLIC_PRINCIPALS), f"public principal at {section}{path}: {leaf}"


def members(kind: str, role: str) -> list[dict]:
    return [body for body in resources(kind).values() if body.get("role") == role]


def test_only_the_push_invoker_may_invoke_each_function():
    grants = members("google_cloud_run_v2_service_iam_member", "roles/run.invoker")
    invoked = {ref(body["name"]): ref(body["member"]) for body in grants}
    expected = {f"google_cloudfunctions2_function.{function_resource(f)}" for f in FUNCTIONS}
    assert set(invoked) == expected
    assert set(invoked.values()) == {"google_service_account.push_invoker"}
    for kind in CONFIG["resource"]:
        assert not kind.endswith(("_iam_binding", "_iam_policy")), f"{kind} replaces grants made by others"


# Each function's one Datastore role: shard only queries.
DATASTORE_ROLES = {"planner": "roles/datastore.user", "shard": "roles/datastore.viewer", "sync": "roles/datastore.user"}
DATABASE_CONDITION = 'resource.name == "projects/${var.project}/databases/${var.datastore_database}"'


def grants_to(account: str) -> list[tuple[str, dict]]:
    """Every IAM grant whose member is `account`, as (kind, body)."""
    return [
        (kind, body)
        for kind, named in CONFIG["resource"].items()
        if kind.endswith("_iam_member")
        for body in named.values()
        if account in refs(body.get("member"))
    ]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_accounts_have_exactly_their_roles(function):
    account = ref(block(function_by_entry_point()[function], "service_config")["service_account_email"])
    grants = grants_to(account)
    project = [body for kind, body in grants if kind == "google_project_iam_member"]
    published = {ref(body["topic"]) for kind, body in grants if kind == "google_pubsub_topic_iam_member"}
    assert [body["role"] for body in project] == [DATASTORE_ROLES[function]]
    assert published == set(PUBLISHES[function].values())
    assert all(
        body["role"] == "roles/pubsub.publisher" for kind, body in grants if kind == "google_pubsub_topic_iam_member"
    )
    assert {kind for kind, _ in grants} <= {"google_project_iam_member", "google_pubsub_topic_iam_member"}, grants


def test_datastore_roles_are_limited_to_the_buildsync_database():
    datastore = [body for body in resources("google_project_iam_member").values() if "datastore" in body["role"]]
    assert len(datastore) == len(FUNCTIONS)
    for body in datastore:
        assert block(body, "condition")["expression"] == DATABASE_CONDITION, body


def test_build_account_writes_images_only_to_the_functions_repository():
    account = "google_service_account.build"
    grants = grants_to(account)
    project_roles = {body["role"] for kind, body in grants if kind == "google_project_iam_member"}
    assert project_roles == {"roles/logging.logWriter", "roles/storage.objectAdmin"}, "no project-wide image writes"
    writers = [body for kind, body in grants if kind == "google_artifact_registry_repository_iam_member"]
    assert [body["role"] for body in writers] == ["roles/artifactregistry.writer"]
    repository = "google_artifact_registry_repository.functions"
    assert refs(writers[0]["repository"]) == {repository}
    for name, body in resources("google_cloudfunctions2_function").items():
        assert ref(block(body, "build_config")["docker_repository"]) == repository, name
    objects = [body for kind, body in grants if body["role"] == "roles/storage.objectAdmin"]
    assert all("gcf-v2-" in block(body, "condition")["expression"] for body in objects)


def test_pubsub_service_agent_can_move_dead_letters_and_use_the_key():
    agent = CONFIG["locals"]["pubsub_agent"]
    assert re.fullmatch(
        r"serviceAccount:service-\$\{data\.google_project\.this\.number\}@gcp-sa-pubsub\.iam\.gserviceaccount\.com",
        agent,
    )
    is_agent = lambda body: ref(body["member"]) == "local.pubsub_agent"  # noqa: E731
    published = {
        ref(b["topic"]) for b in members("google_pubsub_topic_iam_member", "roles/pubsub.publisher") if is_agent(b)
    }
    assert published == {topic_ref("dead_letter")}
    subscribed = {
        ref(b["subscription"])
        for b in members("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber")
        if is_agent(b)
    }
    sources = {
        f"google_pubsub_subscription.{name}"
        for name, body in resources("google_pubsub_subscription").items()
        if "dead_letter_policy" in body
    }
    assert subscribed == sources
    keys = members("google_kms_crypto_key_iam_member", "roles/cloudkms.cryptoKeyEncrypterDecrypter")
    assert any(is_agent(body) for body in keys)


def test_no_project_level_impersonation_roles():
    risky = ("roles/owner", "roles/editor", "roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator")
    for name, body in resources("google_project_iam_member").items():
        assert body["role"] not in risky, name


def test_checkov_skips_carry_a_reason():
    for path in DEPLOY.glob("*.tf"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                assert re.search(r"#\s*checkov:skip=CKV2?_[A-Z]+_\d+:\s*\S.{10,}", line), (
                    f"{path.name}:{number}: {line}"
                )


# --- Datastore indexes --------------------------------------------------------------


class RecordingClient(datastore.Client):
    """A client that records the queries the code builds and answers them with nothing."""

    def __init__(self):
        super().__init__(project="buildsync-test", credentials=AnonymousCredentials())
        self.queries = []

    def query(self, **kwargs):
        query = super().query(**kwargs)
        query.fetch = lambda *args, **kw: iter(())
        self.queries.append(query)
        return query


def code_queries() -> dict[str, datastore.Query]:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    client = RecordingClient()
    job = ShardJob("swarming://x", "chromium", 0, 1, now)
    queries = {
        "shard": shard.due_builds_query(client, job),
        "sync_lag": shard.oldest_due_query(client, job),
        "stray": shard.stray_query(client, job, "swarming://x--chromium--0--~", None),
    }
    for name, run in (
        ("status_pairs", lambda: status.pairs_with_incomplete_builds(client)),
        ("status_times", lambda: status.sync_times(client, "swarming://x", "chromium")),
    ):
        del client.queries[:]
        run()
        (queries[name],) = client.queries
    del client.queries[:]
    planner.projects_with_incomplete_builds(client, "swarming://x")
    outbox.due(client, now, shard=0)
    by_kind: dict[str, list[datastore.Query]] = {}
    for query in client.queries:
        by_kind.setdefault(query.kind, []).append(query)
    (queries["planner"],) = by_kind.pop("Build")
    queries["outbox_created"], queries["outbox_next_attempt"], queries["outbox"] = by_kind.pop(outbox.OUTBOX_KIND)
    assert not by_kind, f"queries this test does not know: {by_kind}"
    return queries


_INEQUALITIES = {"<", "<=", ">", ">=", "!="}


def needed_index(query: datastore.Query) -> tuple[str, frozenset[str], tuple[str, ...]] | None:
    """The composite index `query` needs as (kind, equality properties, ordered tail), or None.

    Datastore serves from built-in indexes a query on one property at most, and
    a query of equality filters only (by merge join) without projection or
    sort order; any other query needs a composite index whose properties are
    the equality properties (in any order), then the inequality property, the
    sort orders and the remaining projected properties.
    """
    equality = frozenset(f.property_name for f in query.filters if f.operator == "=")
    inequality = [f.property_name for f in query.filters if f.operator in _INEQUALITIES]
    assert all(f.operator in _INEQUALITIES | {"="} for f in query.filters), query.filters
    orders = [order.lstrip("-") for order in query.order]
    projected = [p for p in (*query.projection, *query.distinct_on) if p != "__key__"]
    tail: list[str] = []
    for name in (*inequality, *orders, *projected):
        if name not in tail and name not in equality:
            tail.append(name)
    used = equality | set(tail)
    if len(used) <= 1 or (not tail and not projected):
        return None
    return query.kind, equality, tuple(tail)


def covers(index: tuple[str, list[str]], needed: tuple[str, frozenset[str], tuple[str, ...]]) -> bool:
    kind, properties = index
    needed_kind, equality, tail = needed
    return (
        kind == needed_kind
        and len(properties) == len(equality) + len(tail)
        and set(properties[: len(equality)]) == equality
        and tuple(properties[len(equality) :]) == tail
    )


def terraform_indexes() -> list[tuple[str, list[str]]]:
    found = []
    for name, body in resources("google_firestore_index").items():
        assert body["api_scope"] == "DATASTORE_MODE_API", name
        assert body["query_scope"] == "COLLECTION_GROUP", f"{name}: Datastore's ancestor: none"
        assert body["database"] == "${var.datastore_database}" and default("datastore_database") == "(default)"
        (dynamic,) = body["dynamic"]
        fields = dynamic["fields"]
        assert block(fields, "content") == {"field_path": "${fields.value}", "order": "ASCENDING"}, name
        found.append((body["collection"], list(fields["for_each"])))
    return found


def test_composite_indexes_are_one_resource_over_local_datastore_indexes():
    assert set(resources("google_firestore_index")) == {
        f'build["{name}"]' for name in CONFIG["locals"]["datastore_indexes"]
    }


def yaml_indexes() -> list[tuple[str, list[str]]]:
    """deploy/index.yaml, read by a parser for exactly the index.yaml subset it uses."""
    found: list[tuple[str, list[str]]] = []
    seen_header = False
    for number, raw in enumerate((DEPLOY / "index.yaml").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        where = f"index.yaml:{number}: {raw!r}"
        if not line:
            continue
        if line == "indexes:":
            seen_header = True
        elif match := re.fullmatch(r"- kind: (\w+)", line):
            found.append((match.group(1), []))
        elif match := re.fullmatch(r"  ancestor: (\w+)", line):
            assert match.group(1) in ("no", "false"), where
        elif line == "  properties:":
            pass
        elif match := re.fullmatch(r"  - name: (\w+)", line):
            found[-1][1].append(match.group(1))
        elif match := re.fullmatch(r"    direction: (\w+)", line):
            assert match.group(1) == "asc", where
        else:
            raise AssertionError(f"unexpected line {where}")
    assert seen_header and found
    return found


@pytest.mark.parametrize("source", ["terraform", "index.yaml"])
def test_composite_indexes_cover_the_code_queries(source):
    indexes = terraform_indexes() if source == "terraform" else yaml_indexes()
    queries = code_queries()
    needed = {name: needed_index(query) for name, query in queries.items()}
    # The queries this deployment was written for.
    assert needed["shard"] == (
        "Build",
        frozenset({"incomplete", "backend_target", "project"}),
        ("next_backend_sync_time",),
    )
    assert queries["shard"].projection == ["__key__"], "the shard query is keys only"
    assert needed["sync_lag"] == needed["shard"], "the lag query is served by the shard query's index"
    assert needed["stray"] == needed["shard"], "so is the query of the ranges around the shards in use"
    assert needed["planner"] == ("Build", frozenset({"incomplete", "backend_target"}), ("project",))
    outbox_queries = ("outbox", "outbox_created", "outbox_next_attempt")
    assert all(needed[name] is None for name in outbox_queries), "the outbox sweep needs no composite index"
    # `buildsync status` reads the same two indexes.
    assert needed["status_pairs"] == ("Build", frozenset({"incomplete"}), ("backend_target", "project"))
    assert needed["status_times"] == needed["shard"]
    for name, index in needed.items():
        if index is not None:
            assert any(covers(candidate, index) for candidate in indexes), f"no {source} index serves the {name} query"
    for query in queries.values():
        assert query.namespace is None and query.ancestor is None


def test_terraform_and_index_yaml_hold_the_same_indexes():
    normal = lambda indexes: sorted((kind, tuple(properties)) for kind, properties in indexes)  # noqa: E731
    assert normal(terraform_indexes()) == normal(yaml_indexes())


# --- packaging ------------------------------------------------------------------


LOCK_INPUT = REPO / "functions" / "requirements.in"
LOCK_HEADER = re.compile(r"# Locked by tools/lock\.sh from functions/requirements\.in \(sha256 ([0-9a-f]{64})\)")


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")


def lock_input() -> dict[str, str]:
    """functions/requirements.in: each requirement by its normalised name."""
    lines = [line.split("#", 1)[0].strip() for line in LOCK_INPUT.read_text().splitlines()]
    return {_name(line): line for line in lines if line}


def locked(function: str) -> dict[str, tuple[str, list[str]]]:
    """A function's requirements.txt as {name: (exact version, hashes)}; anything else fails."""
    text = (REPO / "functions" / function / "requirements.txt").read_text()
    entries = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    pins = {}
    for line in entries.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{function}/requirements.txt: {line!r} is not an exact pin with hashes"
        pins[_name(match.group(1))] = (match.group(2), re.findall(r"sha256:([0-9a-f]{64})", match.group(3)))
    return pins


def test_lock_input_covers_the_vendored_package():
    """The zip has no shared/: the functions' requirements must bring the core package's dependencies."""
    pyproject = tomllib.loads((REPO / "shared" / "pyproject.toml").read_text())
    wanted = {_name(dep): dep for dep in pyproject["project"]["dependencies"]}
    listed = lock_input()
    assert "functions-framework" in listed
    assert set(wanted) <= set(listed), f"functions/requirements.in lacks {sorted(set(wanted) - set(listed))}"
    for line in listed.values():
        assert "buildsync" not in line and not line.startswith(("-e", "-r", ".", "/")), line
        assert re.search(r"<\s*[0-9]", line), f"{line!r}: every requirement has an upper bound"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_requirements_are_a_fresh_lock_with_exact_versions_and_hashes(function):
    from packaging.requirements import Requirement

    path = REPO / "functions" / function / "requirements.txt"
    header = LOCK_HEADER.match(path.read_text())
    assert header, f"{path} was not written by tools/lock.sh"
    digest = hashlib.sha256(LOCK_INPUT.read_bytes()).hexdigest()
    assert header.group(1) == digest, f"{path} is stale: functions/requirements.in changed; run tools/lock.sh"
    pins = locked(function)
    for name, line in lock_input().items():
        assert name in pins, f"{function}: {name} is not locked"
        assert Requirement(line).specifier.contains(pins[name][0], prereleases=True), (name, pins[name][0])
    assert all(hashes for _, hashes in pins.values())
    assert path.read_bytes() == (REPO / "functions" / "sync" / "requirements.txt").read_bytes(), "one lock for all"


def test_development_requirements_have_upper_bounds():
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-e"):
            assert "==" in line or re.search(r"<\s*[0-9]", line), f"requirements.txt: {line!r} has no upper bound"


@pytest.fixture
def repo_copy(tmp_path) -> pathlib.Path:
    """The parts of the repository package.sh reads, with build litter planted in the package."""
    copy = tmp_path / "repo"
    (copy / "deploy").mkdir(parents=True)
    shutil.copy2(DEPLOY / "package.sh", copy / "deploy" / "package.sh")
    shutil.copytree(REPO / "functions", copy / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        REPO / "shared" / "buildsync",
        copy / "shared" / "buildsync",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for litter in (
        "__pycache__/settings.cpython-312.pyc",
        "proto/__pycache__/buildbucket_pb2.cpython-312.pyc",
        "stale.pyc",
    ):
        path = copy / "shared" / "buildsync" / litter
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"litter")
    return copy


def _package(
    repo: pathlib.Path, outdir: pathlib.Path, settings: pathlib.Path, cwd: pathlib.Path
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(
        ["bash", str(repo / "deploy" / "package.sh"), str(outdir), str(settings)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _package_files() -> set[str]:
    """What the vendored package must hold: the source tree's files, without bytecode."""
    root = REPO / "shared" / "buildsync"
    return {
        "buildsync/" + path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    }


@pytest.mark.parametrize("suffix,packaged_as", [(".cfg", "settings.cfg"), (".json", "settings.json")])
def test_package_sh_builds_the_zips(tmp_path, repo_copy, suffix, packaged_as):
    settings = tmp_path / f"my-settings{suffix}"
    if suffix == ".json":
        settings.write_text(
            json.dumps({"backends": [{"target": "swarming://x", "hostname": "x.example.com", "full_mode": {}}]})
        )
    else:
        settings.write_text((DEPLOY / "settings.example.cfg").read_text())
    outdir = tmp_path / "out"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = _package(repo_copy, pathlib.Path("out"), settings, cwd=tmp_path)  # relative OUTDIR, from another cwd
    assert result.returncode == 0, result.stderr
    assert "settings valid" in result.stderr
    expected = {"main.py", "requirements.txt", packaged_as} | _package_files()
    assert any(name.endswith("_pb2.py") for name in expected)
    for function in FUNCTIONS:
        with zipfile.ZipFile(outdir / f"{function}.zip") as archive:
            assert set(archive.namelist()) == expected, function
            assert archive.read("main.py") == (REPO / "functions" / function / "main.py").read_bytes()
            assert archive.read("requirements.txt") == (REPO / "functions" / function / "requirements.txt").read_bytes()
            assert archive.read(packaged_as) == settings.read_bytes()
    assert (outdir / "settings.sha256").read_text().strip() == hashlib.sha256(settings.read_bytes()).hexdigest()
    # Reproducible: the same tree gives the same bytes, so Terraform sees no change.
    first = {f: (outdir / f"{f}.zip").read_bytes() for f in FUNCTIONS}
    assert _package(repo_copy, outdir, settings, cwd=elsewhere).returncode == 0
    assert first == {f: (outdir / f"{f}.zip").read_bytes() for f in FUNCTIONS}


def test_package_sh_rejects_invalid_settings(tmp_path):
    settings = tmp_path / "bad.cfg"
    settings.write_text('backends { target: "swarming://x" }')  # no mode
    result = _package(REPO, tmp_path / "out", settings, cwd=tmp_path)
    assert result.returncode != 0 and "mode" in result.stderr
    assert not (tmp_path / "out" / "planner.zip").exists()


def test_functions_read_the_settings_where_package_sh_puts_them():
    settings_name = CONFIG["locals"]["settings_name"]
    assert "settings.json" in settings_name and "settings.cfg" in settings_name and "var.settings_file" in settings_name
    assert CONFIG["locals"]["settings_path"] == "/workspace/${local.settings_name}"
    for name, body in resources("google_cloudfunctions2_function").items():
        assert (
            block(body, "service_config")["environment_variables"]["BUILDSYNC_SETTINGS"] == "${local.settings_path}"
        ), name
    for name, body in resources("google_storage_bucket_object").items():
        assert "local.package_dir" in refs(body["source"]), name
        condition = block(body, "lifecycle", "precondition")["condition"]
        assert {"local.package_dir", "var.settings_file"} <= refs(condition), (
            f"{name}: zips and settings_file may differ"
        )


# --- per-backend subscriptions and the retry budget ------------------------------

BACKENDS = ["swarming://chromium-swarm", "buildbucket://Other.Example.com"]
CONFIG_WITH_BACKENDS = _load_config({"sync_backends": BACKENDS})


def test_each_listed_backend_has_its_own_sync_subscription_and_the_rest_share_one():
    subscriptions = CONFIG_WITH_BACKENDS["resource"]["google_pubsub_subscription"]
    sync_topic = topic_ref("sync")
    on_sync = {name: body for name, body in subscriptions.items() if ref(body["topic"]) == sync_topic}
    assert set(on_sync) == {
        'function["sync"]',
        'function["sync-swarming-chromium-swarm"]',
        'function["sync-buildbucket-other-example-com"]',
    }
    filters = {body["name"]: body["filter"] for body in on_sync.values()}
    assert filters == {
        "buildsync-sync-swarming-chromium-swarm": 'attributes.backend = "swarming://chromium-swarm"',
        "buildsync-sync-buildbucket-other-example-com": 'attributes.backend = "buildbucket://Other.Example.com"',
        "buildsync-sync": "${local.sync_other_backends_filter}",
    }
    # The catch-all takes exactly the batches no other subscription takes.
    other = _computed_local(CONFIG_WITH_BACKENDS, "sync_other_backends_filter")
    assert other == " AND ".join(f'NOT attributes.backend = "{backend}"' for backend in BACKENDS)
    assert _computed_local(CONFIG, "sync_other_backends_filter") == "", "no backends: one unfiltered subscription"
    target = f"google_cloudfunctions2_function.{function_resource('sync')}"
    for body in on_sync.values():
        push = block(body, "push_config")
        assert target in refs(push["push_endpoint"]) and ref(block(push, "oidc_token")["audience"]) == target
        assert block(body, "dead_letter_policy")["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    subscribed = {
        ref(body["subscription"])
        for body in CONFIG_WITH_BACKENDS["resource"]["google_pubsub_subscription_iam_member"].values()
    }
    assert subscribed == {f"google_pubsub_subscription.{name}" for name in subscriptions if name != "dead_letter"}


def test_sync_backends_are_validated_for_distinct_names_and_the_filter_limit():
    conditions = " ".join(rule["condition"] for rule in CONFIG["variable"]["sync_backends"]["validation"])
    assert "distinct" in conditions and "256" in conditions
    assert sync_backend_slug("swarming://Chromium--Swarm.") == "swarming-chromium-swarm"


def test_shard_batches_carry_the_backend_attribute_the_filters_read():
    source = (REPO / "shared" / "buildsync").rglob("*.py")
    publishing = [path for path in source if re.search(r'"backend":\s*\w+\.backend', path.read_text())]
    assert publishing, "no stage publishes batches with a backend attribute"


def _seconds(duration: str) -> int:
    assert re.fullmatch(r"\d+s", duration), duration
    return int(duration[:-1])


def test_backlog_cut_off_covers_the_retry_budget():
    budget = default("max_delivery_attempts") * _seconds(default("maximum_backoff"))
    assert CONFIG["locals"]["retry_budget_seconds"] == (
        '${var.max_delivery_attempts * tonumber(trimsuffix(var.maximum_backoff, "s"))}'
    )
    assert budget <= default("max_event_age_seconds") <= 15 * 60, "a cut-off of a few minutes, above the budget"
    for name, body in resources("google_cloudfunctions2_function").items():
        condition = block(body, "lifecycle", "precondition")["condition"]
        assert condition == "${var.max_event_age_seconds >= local.retry_budget_seconds}", name
        env = block(body, "service_config")["environment_variables"]
        assert env["BUILDSYNC_MAX_EVENT_AGE_SECONDS"] == "${var.max_event_age_seconds}"


def test_a_burst_of_429s_is_retried_for_minutes_before_a_dead_letter():
    """Pub/Sub's exponential backoff from minimum to maximum, over max_delivery_attempts - 1 retries."""
    waits, wait = [], _seconds(default("minimum_backoff"))
    for _ in range(default("max_delivery_attempts") - 1):
        waits.append(min(wait, _seconds(default("maximum_backoff"))))
        wait *= 2
    assert sum(waits) >= 5 * 60, f"a burst gets only {sum(waits)} s to drain"
    assert default("max_instance_count")["sync"] >= 10


# --- metrics, alerts, dashboard ---------------------------------------------------

from buildsync import metrics  # noqa: E402

LOG_METRICS = CONFIG["locals"]["log_metrics"]
# The Pub/Sub metrics the alerts and the dashboard may read.
PUBSUB_METRICS = {
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
}


def test_terraform_declares_exactly_the_log_metrics_of_metrics_py():
    assert set(LOG_METRICS) == set(metrics.METRICS)
    for name, metric in metrics.METRICS.items():
        declared = LOG_METRICS[name]
        assert declared["line"] == metric.line, name
        assert declared["labels"] == list(metric.labels), name
        assert declared["value"] == metric.value, name
        assert declared["unit"] == metric.unit, name
        assert declared["description"] == metric.description, name
        buckets = declared["buckets"]
        assert (buckets is None) == (metric.value is None), f"{name}: only distributions have buckets"
        if buckets:
            assert buckets["count"] >= 10 and buckets["growth"] > 1 and buckets["scale"] > 0, name


def test_log_metrics_read_the_functions_lines_by_their_metric_field():
    (body,) = CONFIG["templates"]["google_logging_metric"].values()
    assert body["for_each"] == "${local.log_metrics}"
    assert body["name"] == "buildsync/${each.key}"
    line_filter = f'jsonPayload.{metrics.METRIC_FIELD}="${{each.value.line}}"'
    assert body["filter"] == f"${{local.function_log_filter}} AND {line_filter}"
    logs = CONFIG["locals"]["function_log_filter"]
    assert 'resource.type="cloud_run_revision"' in logs
    assert re.search(r"service_name=~\"\^buildsync-\((\w+)\|(\w+)\|(\w+)\)\$\"", logs).groups() == FUNCTIONS
    assert body["label_extractors"] == '${{for label in each.value.labels : label => "EXTRACT(jsonPayload.${label})"}}'
    assert body["value_extractor"] == '${each.value.value == null ? null : "EXTRACT(jsonPayload.${each.value.value})"}'
    descriptor = block(body, "metric_descriptor")
    assert descriptor["metric_kind"] == "DELTA"
    assert descriptor["value_type"] == '${each.value.value == null ? "INT64" : "DISTRIBUTION"}'
    (labels,) = descriptor["dynamic"]
    assert labels["labels"]["for_each"] == "${each.value.labels}"
    (buckets,) = body["dynamic"]
    assert buckets["bucket_options"]["for_each"] == "${each.value.buckets == null ? [] : [each.value.buckets]}"


_LOG_METRIC_TYPE = re.compile(
    r'metric\.type = \\?"logging\.googleapis\.com/user/\$\{google_logging_metric\.buildsync\["(\w+)"\]\.name\}\\?"'
)
_METRIC_TYPE = re.compile(r'metric\.type\s*=\s*\\?"([a-z./_]+)\\?"')


def metrics_read(filter_: str) -> set[str]:
    """The metrics a Monitoring filter reads: log-based ones by key, others by type."""
    found = {f"log:{key}" for key in _LOG_METRIC_TYPE.findall(filter_)}
    found |= set(_METRIC_TYPE.findall(filter_))
    assert found, f"filter reads no metric: {filter_}"
    return found


ALERTS = resources("google_monitoring_alert_policy")


def alert_filters(body: dict) -> list[tuple[str, dict]]:
    out = []
    for condition in body["conditions"]:
        for kind in ("condition_threshold", "condition_absent"):
            for spec in condition.get(kind, []):
                out.append((spec["filter"], spec))
                if "denominator_filter" in spec:
                    out.append((spec["denominator_filter"], spec))
    assert out, "an alert without a condition"
    return out


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_alert_reads_a_metric_that_exists_with_labels_it_has(alert):
    body = ALERTS[alert]
    assert body["notification_channels"] == "${var.notification_channels}"
    assert block(body, "documentation")["content"]
    for filter_, spec in alert_filters(body):
        for metric in metrics_read(filter_):
            if metric.startswith("log:"):
                key = metric[4:]
                assert key in LOG_METRICS, f"{alert} reads buildsync/{key}, which metrics.tf does not declare"
                labels = set(LOG_METRICS[key]["labels"])
                assert 'resource.type = "cloud_run_revision"' in filter_, f"{alert}: the functions' metrics"
            else:
                assert metric in PUBSUB_METRICS, f"{alert} reads {metric}"
                labels = set()
            used = set(re.findall(r"metric\.label\.(\w+)", filter_))
            for aggregation in spec.get("aggregations", []) + spec.get("denominator_aggregations", []):
                used |= {
                    field.split(".")[-1]
                    for field in aggregation.get("group_by_fields", [])
                    if field.startswith("metric.label.")
                }
            assert used <= labels, f"{alert}: labels {used - labels} are not labels of {metric}"


def test_the_alerts_the_operator_needs_exist():
    reads = {name: set().union(*(metrics_read(f) for f, _ in alert_filters(body))) for name, body in ALERTS.items()}
    assert reads == {
        "dead_letters": {"pubsub.googleapis.com/subscription/num_undelivered_messages"},
        "sync_lag": {"log:sync_lag_seconds"},
        "permanent_errors": {"log:permanent_errors"},
        "fetch_tasks_failures": {"log:fetch_tasks_calls"},
        "sync_backlog": {"pubsub.googleapis.com/subscription/oldest_unacked_message_age"},
        "backend_held_back": {"log:backends_held_back"},
    }
    dead_letters = block(ALERTS["dead_letters"], "conditions", "condition_threshold")
    assert "${google_pubsub_subscription.dead_letter.name}" in dead_letters["filter"]
    assert (dead_letters["comparison"], dead_letters["threshold_value"]) == ("COMPARISON_GT", 0)
    lag = ALERTS["sync_lag"]["conditions"]
    assert lag[0]["condition_threshold"][0]["threshold_value"] == "${var.sync_lag_threshold_seconds}"
    assert "condition_absent" in lag[1], "a stopped planner reports no lag at all"
    ratio = block(ALERTS["fetch_tasks_failures"], "conditions", "condition_threshold")
    assert 'metric.label.code != "OK"' in ratio["filter"] and "code" not in ratio["denominator_filter"]
    assert ratio["threshold_value"] == "${var.fetch_tasks_failure_ratio}"
    backlog = block(ALERTS["sync_backlog"], "conditions", "condition_threshold")
    assert 'subscription_id = starts_with("buildsync-sync")' in backlog["filter"]
    assert all(name.startswith("buildsync-sync") for name in _sync_subscription_names())
    assert block(ALERTS["permanent_errors"], "conditions", "condition_threshold")["threshold_value"] == (
        "${var.permanent_errors_per_10_minutes}"
    )
    held_back = block(ALERTS["backend_held_back"], "conditions", "condition_threshold")
    assert held_back["threshold_value"] == "${var.backend_held_back_minutes - 1}"
    assert block(held_back, "aggregations")["group_by_fields"] == ["metric.label.backend"]


def _sync_subscription_names() -> list[str]:
    subscriptions = CONFIG_WITH_BACKENDS["resource"]["google_pubsub_subscription"].values()
    return [body["name"] for body in subscriptions if ref(body["topic"]) == topic_ref("sync")]


def render_dashboard() -> dict:
    """deploy/dashboard.json.tftpl rendered as templatefile would, with the values main.tf passes."""
    (body,) = resources("google_monitoring_dashboard").values()
    call = body["dashboard_json"]
    assert call.startswith('${templatefile("${path.module}/dashboard.json.tftpl", {')
    promql = '"logging_googleapis_com:user_${replace(metric.name, "/", "_")}"'
    assert f"promql = {{for key, metric in google_logging_metric.buildsync : key => {promql}}}" in call
    passed_alerts = set(re.findall(r"google_monitoring_alert_policy\.(\w+)\.name", call))
    assert passed_alerts == set(ALERTS)

    def value(match: re.Match) -> str:
        name, key = match.group(1), match.group(2)
        if name == "promql":
            assert key in LOG_METRICS, f"the dashboard reads buildsync/{key}, which metrics.tf does not declare"
            return f"logging_googleapis_com:user_buildsync_{key}"
        if name == "alerts":
            assert key in ALERTS and f"{key} = google_monitoring_alert_policy.{key}.name" in call, key
            return f"projects/p/alertPolicies/{key}"
        assert name == "dead_letter_subscription" and key is None, match.group(0)
        return "buildsync-dead-letter-sub"

    text = re.sub(r'\$\{(\w+)(?:\["(\w+)"\])?\}', value, (DEPLOY / "dashboard.json.tftpl").read_text())
    assert "${" not in text and "%{" not in text
    return json.loads(text)


def values_at(tree, suffix: str) -> list:
    """The values (not the keys) at paths ending in `suffix`."""
    key = suffix.rsplit("/", 1)[1]
    return [leaf for path, leaf in walk(tree) if path.endswith(suffix) and leaf != key]


def test_dashboard_charts_existing_metrics_with_their_labels():
    dashboard = render_dashboard()
    tiles = dashboard["mosaicLayout"]["tiles"]
    queries = values_at(tiles, "/prometheusQuery")
    filters = values_at(tiles, "/timeSeriesFilter/filter")
    assert queries and filters
    for query in queries:
        names = re.findall(r"logging_googleapis_com:user_buildsync_(\w+?)(_sum|_count|_bucket)?\{([^}]*)\}", query)
        assert names, query
        grouped = set()
        for by in re.findall(r"by \(([^)]*)\)", query):
            grouped |= {label.strip() for label in by.split(",")} - {"le"}
        for key, suffix, selector in names:
            metric = metrics.METRICS[key]
            assert bool(suffix) == (metric.value is not None), (
                f"{key}{suffix}: distributions take a suffix, counters none"
            )
            assert 'monitored_resource="cloud_run_revision"' in selector, query
            selected = set(re.findall(r"(\w+)!?=", selector)) - {"monitored_resource"}
            assert grouped | selected <= set(metric.labels), f"{query}: labels not on {key}"
    for filter_ in filters:
        assert metrics_read(filter_.replace("=", " = ")) <= PUBSUB_METRICS


def test_dashboard_shows_throughput_completed_builds_and_every_alert():
    dashboard = render_dashboard()
    text = json.dumps(dashboard)
    for key in (
        "builds_synced",
        "build_cycle_seconds",
        "sync_lag_seconds",
        "fetch_tasks_latency",
        "fetch_tasks_calls",
        "permanent_errors",
    ):
        assert f"user_buildsync_{key}" in text, key
    charted = set(values_at(dashboard, "/alertChart/name"))
    assert charted == {f"projects/p/alertPolicies/{name}" for name in ALERTS}
    positions = [(tile["xPos"], tile["yPos"]) for tile in dashboard["mosaicLayout"]["tiles"]]
    assert len(positions) == len(set(positions))
    assert all(
        tile["xPos"] + tile["width"] <= dashboard["mosaicLayout"]["columns"]
        for tile in dashboard["mosaicLayout"]["tiles"]
    )


# --- buildbucket completion mode (handoff.tf) ------------------------------------

BUILDBUCKET_MODE = {
    "completion": "buildbucket",
    "buildbucket_project": "bb-project",
    "buildbucket_location": "us-central1",
    "buildbucket_push": "https://bb.example",
    "buildbucket_push_as": "pusher@bb-project.iam.gserviceaccount.com",
}


def test_standalone_mode_grants_nothing_on_buildbuckets_queues():
    assert resources("google_cloud_tasks_queue_iam_member") == {}
    assert not any(name.startswith("push_as") for name in resources("google_service_account_iam_member"))


def test_buildbucket_mode_lets_the_planner_and_the_sync_enqueue_into_exactly_buildbuckets_queues():
    config = _load_config(BUILDBUCKET_MODE)
    grants = config["resource"]["google_cloud_tasks_queue_iam_member"].values()
    granted = {(ref(body["member"]), body["name"]) for body in grants}
    accounts = {f'google_service_account.function["{function}"]' for function in ("planner", "sync")}
    assert granted == {(account, queue) for account in accounts for queue in handoff.QUEUES}
    assert {(body["role"], body["project"], body["location"]) for body in grants} == {
        ("roles/cloudtasks.enqueuer", "${var.buildbucket_project}", "${var.buildbucket_location}")
    }
    acting = [
        body
        for name, body in config["resource"]["google_service_account_iam_member"].items()
        if name.startswith("push_as")
    ]
    assert {ref(body["member"]) for body in acting} == accounts
    assert {body["role"] for body in acting} == {"roles/iam.serviceAccountUser"}
    assert {body["service_account_id"] for body in acting} == {
        "projects/${var.buildbucket_project}/serviceAccounts/${var.buildbucket_push_as}"
    }


def test_the_functions_get_every_completion_variable_env_py_names():
    names = {env.COMPLETION, env.BUILDBUCKET_QUEUES, env.BUILDBUCKET_PUSH, env.BUILDBUCKET_PUSH_AS, env.DSCACHE_REDIS}
    assert names <= set(CONFIG["locals"]["function_env"])
    assert CONFIG["locals"]["function_env"][env.COMPLETION] == "${var.completion}"
