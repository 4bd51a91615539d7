"""deploy/bigquery.tf: the optional BigQuery export of the builds topic, checked statically.

Parsed with the same loader as the other deploy tests (tests/deploy/terraform.py). The view is checked
against a notification the code really produces, so a renamed JSON field
cannot leave the view reading nulls.
"""

from __future__ import annotations

import json
import re

import pytest
from buildsync.ending import notification_format
from buildsync.proto import buildbucket_pb2 as pb

from tests.deploy.terraform import CONFIG, block, default, load_config, ref, resources

BIGQUERY_RESOURCES = [
    ("google_kms_crypto_key", "bigquery"),
    ("google_kms_crypto_key_iam_member", "bigquery_agent"),
    ("google_bigquery_dataset", "builds"),
    ("google_bigquery_table", "notifications"),
    ("google_bigquery_table", "builds_view"),
    ("google_bigquery_table_iam_member", "pubsub_agent_writes"),
]
# The export's subscription and its grant are instances of the resources over
# local.deliveries (pubsub.tf, iam.tf), there only with a dataset named.
EXPORT = 'function["builds-bigquery"]'
CONFIG_WITH_EXPORT = load_config({"bigquery_dataset": "buildsync"})


def subscription() -> dict:
    return CONFIG_WITH_EXPORT["resource"]["google_pubsub_subscription"][EXPORT]


def table() -> dict:
    return resources("google_bigquery_table")["notifications"]


def test_the_export_is_off_unless_a_dataset_is_named():
    assert default("bigquery_dataset") == ""
    assert CONFIG["locals"]["bigquery_count"] == "${local.bigquery_enabled ? 1 : 0}"
    assert CONFIG["locals"]["bigquery_enabled"] == '${var.bigquery_dataset != ""}'
    for kind, name in BIGQUERY_RESOURCES:
        assert resources(kind)[name]["count"] == "${local.bigquery_count}", f"{kind}.{name}"
    data = CONFIG["data"]["google_bigquery_default_service_account"]["this"]
    assert data["count"] == "${local.bigquery_count}"
    assert EXPORT not in resources("google_pubsub_subscription")
    assert not any("builds-bigquery" in name for name in resources("google_pubsub_subscription_iam_member"))


def test_the_subscription_reads_the_builds_topic_into_the_table_with_metadata():
    body = subscription()
    assert body["topic"] == "${local.builds_topic_id}"
    config = block(body, "bigquery_config")
    assert config["write_metadata"] is True
    assert "use_table_schema" not in config and "use_topic_schema" not in config, "rows keep the whole message"
    assert "google_bigquery_table.notifications[0]" in config["table"]
    assert "google_bigquery_dataset.builds[0]" in config["table"]


def test_refused_messages_are_dead_lettered_and_the_agent_may_do_so():
    body = subscription()
    dead_letter = block(body, "dead_letter_policy")
    assert ref(dead_letter["dead_letter_topic"]) == 'google_pubsub_topic.topic["dead_letter"]'
    assert dead_letter["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert block(body, "retry_policy")
    assert "push_config" not in body, "Pub/Sub writes the rows itself"
    grant = CONFIG_WITH_EXPORT["resource"]["google_pubsub_subscription_iam_member"][
        'pubsub_agent_subscribes["builds-bigquery"]'
    ]
    assert ref(grant["subscription"]) == f"google_pubsub_subscription.{EXPORT}"
    assert grant["role"] == "roles/pubsub.subscriber" and grant["member"] == "${local.pubsub_agent}"
    publishes = resources("google_pubsub_topic_iam_member")["pubsub_agent_publishes_dead_letters"]
    assert publishes["member"] == "${local.pubsub_agent}"


def test_the_pubsub_agent_may_write_the_table_before_the_subscription_exists():
    grant = resources("google_bigquery_table_iam_member")["pubsub_agent_writes"]
    assert grant["role"] == "roles/bigquery.dataEditor" and grant["member"] == "${local.pubsub_agent}"
    assert "google_bigquery_table.notifications[0]" in grant["table_id"]
    assert "${google_bigquery_table_iam_member.pubsub_agent_writes}" in subscription()["depends_on"]


def test_the_table_has_the_columns_a_metadata_subscription_writes():
    assert table()["schema"] == "${jsonencode(local.bigquery_schema)}"
    columns = {column["name"]: column["type"] for column in CONFIG["locals"]["bigquery_schema"]}
    assert columns == {
        "subscription_name": "STRING",
        "message_id": "STRING",
        "publish_time": "TIMESTAMP",
        "data": "STRING",
        "attributes": "STRING",
    }
    partitioning = block(table(), "time_partitioning")
    assert partitioning["type"] == "DAY" and partitioning["field"] == "publish_time"
    assert table()["deletion_protection"] is True


@pytest.mark.parametrize(
    ("kind", "name", "attribute"),
    [
        ("google_bigquery_dataset", "builds", "default_encryption_configuration"),
        ("google_bigquery_table", "notifications", "encryption_configuration"),
    ],
)
def test_data_is_encrypted_with_its_own_rotated_key(kind, name, attribute):
    key = block(resources(kind)[name], attribute)["kms_key_name"]
    assert key == "${google_kms_crypto_key.bigquery[0].id}"
    crypto_key = resources("google_kms_crypto_key")["bigquery"]
    assert crypto_key["rotation_period"] == "${var.kms_rotation_period}"
    assert block(crypto_key, "lifecycle")["prevent_destroy"] is True
    grant = resources("google_kms_crypto_key_iam_member")["bigquery_agent"]
    assert "data.google_bigquery_default_service_account.this[0].email" in grant["member"]


def sample_notification() -> dict:
    build = pb.Build(id=99, number=3, status=pb.SUCCESS, summary_markdown="ok")
    build.builder.project, build.builder.bucket, build.builder.builder = "p", "ci", "b"
    for field in ("create_time", "start_time", "end_time", "update_time"):
        getattr(build, field).FromSeconds(1_700_000_000)
    build.tags.add(key="k", value="v")
    build.infra.resultdb.hostname = "r"
    build.output.status = pb.SUCCESS
    build.steps.add(name="s")
    message = notification_format.builds_v2_pubsub(build)
    message.build_large_fields_dropped = True  # so every top-level field is present
    message.compression = 1
    return json.loads(notification_format.to_pubsub_data(message))


def _lookup(document, path: str):
    for part in path.split("."):
        document = document[part]
    return document


def test_the_view_reads_fields_the_notifications_carry():
    query = block(resources("google_bigquery_table")["builds_view"], "view")["query"]
    notification = sample_notification()
    paths = re.findall(r"JSON_(?:VALUE|QUERY|QUERY_ARRAY)\((b|m|t), '\$\.([A-Za-z.]+)'\)", query)
    assert len(paths) > 10
    for document, path in paths:
        if document == "t":
            _lookup(notification["build"]["tags"][0], path)
        else:
            _lookup(notification["build"] if document == "b" else notification, path)
    assert "`${var.project}.${var.bigquery_dataset}.${var.bigquery_table}`" in query
