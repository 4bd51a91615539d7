"""Topics and subscriptions: who feeds whom, retry and dead-letter policies, encryption, the scheduler."""

from __future__ import annotations

import re

import pytest

from tests.deploy.terraform import (
    CONFIG,
    FEEDS,
    FUNCTIONS,
    PUBLISHES,
    block,
    default,
    function_by_entry_point,
    function_resource,
    ref,
    refs,
    resources,
    topic_ref,
    topic_resource,
)


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
