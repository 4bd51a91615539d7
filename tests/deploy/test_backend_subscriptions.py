"""Per-backend sync subscriptions and the retry budget against the message-age cut-off."""

from __future__ import annotations

import re

from tests.deploy.terraform import (
    BACKENDS,
    CONFIG,
    CONFIG_WITH_BACKENDS,
    block,
    computed_local,
    default,
    function_resource,
    ref,
    refs,
    resources,
    sync_backend_slug,
    topic_ref,
)


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
    other = computed_local(CONFIG_WITH_BACKENDS, "sync_other_backends_filter")
    assert other == " AND ".join(f'NOT attributes.backend = "{backend}"' for backend in BACKENDS)
    assert computed_local(CONFIG, "sync_other_backends_filter") == "", "no backends: one unfiltered subscription"
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
