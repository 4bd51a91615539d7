"""The deployment's Terraform, parsed with python-hcl2 (no provider, no network), for the tests of deploy/.

`CONFIG` is deploy/ with its variables' defaults, for_each and dynamic blocks expanded.
"""

from __future__ import annotations

import json
import pathlib
import re

import hcl2

REPO = pathlib.Path(__file__).resolve().parents[2]
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


def load_config(variables: dict | None = None) -> dict:
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


def computed_local(config: dict, name: str):
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
            for name, subscription in computed_local(config, "subscriptions").items()
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
    value = computed_local(config, match.group(1))
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


CONFIG = load_config()


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


# Two listed sync backends, for the per-backend subscriptions and the charts over them.
BACKENDS = ["swarming://chromium-swarm", "buildbucket://Other.Example.com"]
CONFIG_WITH_BACKENDS = load_config({"sync_backends": BACKENDS})
