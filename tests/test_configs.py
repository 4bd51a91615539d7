"""store/configs.py: Buildbucket's config entities as ending a build reads them, whatever they hold."""

from __future__ import annotations

import pytest
from buildsync.proto import project_config_pb2 as cpb
from buildsync.store import configs, model
from google.cloud import datastore

from tests.buildbucket_writer import gae_proto
from tests.harness import captured_logs


def entity(kind: str, **properties) -> datastore.Entity:
    stored = datastore.Entity(datastore.Key(kind, "x", project="p"))
    stored.update(properties)
    return stored


def test_a_builders_limit_is_read_from_its_config():
    config = cpb.BuilderConfig(max_concurrent_builds=3).SerializeToString()
    assert configs.max_concurrent_builds(entity(configs.BUILDER_KIND, config=config)) == 3
    assert configs.max_concurrent_builds(None) == 0


@pytest.mark.parametrize("config", [b"\xff\xff", "text", 7])
def test_a_builder_config_that_does_not_decode_or_is_no_bytes_is_no_limit_with_one_error(config):
    with captured_logs() as captured:
        assert configs.max_concurrent_builds(entity(configs.BUILDER_KIND, config=config)) == 0
    (error,) = [e for e in captured.events() if e["severity"] == "ERROR"]
    assert error["message"] == "builder config does not decode"


def test_a_projects_topics_are_read_from_its_common_config():
    config = cpb.BuildbucketCfg.CommonConfig()
    config.builds_notification_topics.add(name="projects/p/topics/t")
    stored = entity(configs.PROJECT_KIND, common_config=gae_proto(config))
    assert [topic.name for topic in configs.notification_topics(stored)] == ["projects/p/topics/t"]


@pytest.mark.parametrize("common_config", [b"\x00garbage", "text", 7, [b"\x0c"]])
def test_a_common_config_that_does_not_decode_or_is_no_bytes_is_an_entity_decode_error(common_config):
    with pytest.raises(model.EntityDecodeError, match="common_config does not decode"):
        configs.notification_topics(entity(configs.PROJECT_KIND, common_config=common_config))
