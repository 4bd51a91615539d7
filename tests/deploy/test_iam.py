"""IAM: no public principal, each account exactly its roles, the Pub/Sub agent and the build account."""

from __future__ import annotations

import re

import pytest

from tests.deploy.terraform import (
    CONFIG,
    DEPLOY,
    FUNCTIONS,
    PUBLIC_PRINCIPALS,
    PUBLISHES,
    block,
    function_by_entry_point,
    function_resource,
    ref,
    refs,
    resources,
    topic_ref,
    walk,
)


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
