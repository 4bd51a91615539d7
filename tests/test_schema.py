"""Our .proto declarations against upstream's own files, field by field.

The comparison runs against BUILDSYNC_UPSTREAM_PROTO_DIR (a luci-go checkout
or a folder laid out by import path) or ../shared/upstream-protos beside the
repository, and prints what it compared and every mismatch. Without either it
is skipped loudly; it is never the only proof (tests/test_every_field.py ends a
build with every field set).
"""

from __future__ import annotations

import pathlib

import pytest

from tests import upstream_schema
from tests.harness import skip_loudly


@pytest.fixture(scope="module")
def upstream_pool():
    folder, where = upstream_schema.upstream_folder()
    if folder is None:
        skip_loudly(f"UPSTREAM'S .proto FILES ARE NOT AVAILABLE; the schema comparison is skipped: {where}")
    print(f"\nupstream .proto files: {where}")
    return upstream_schema.compile_upstream(folder)


def test_every_declaration_matches_upstreams_field_by_field(upstream_pool):
    comparison = upstream_schema.compare_files(upstream_schema.our_files(), upstream_pool)
    print(comparison.report())
    assert comparison.mismatches == []
    compared = {"buildsync/proto/buildbucket.proto", "buildsync/proto/notification.proto"}
    assert not compared & set(comparison.without_counterpart), "the folder lacks upstream's build.proto"


def _pool_of(tmp_path: pathlib.Path, name: str, text: str):
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.proto").write_text(text)
    pool = upstream_schema.compile_protos((f"-I{folder}",), [f"{name}.proto"])
    return pool, pool.FindFileByName(f"{name}.proto")


OURS = """
syntax = "proto3";
package p;
enum E { E0 = 0; E1 = 1; }
message M {
  message N {}
  reserved 10;
  string a = 1;
  int64 b = 2;
  repeated string c = 3;
  oneof o { string d = 4; }
  E e = 5;
  N n = 6;
  string renamed = 7;
  int32 extra = 9;
  optional string f = 11;
  string g = 12 [json_name = "gee"];
}
"""

UPSTREAM = """
syntax = "proto3";
package p;
enum E { E0 = 0; E1 = 2; }
message Other {}
message M {
  reserved 10, 13;
  string a = 1;
  int32 b = 2;
  string c = 3;
  string d = 4;
  E e = 5;
  Other n = 6;
  string original = 7;
  string missing = 8;
  string f = 11;
  string g = 12;
}
"""


def test_the_comparison_reports_every_kind_of_difference(tmp_path):
    _, ours = _pool_of(tmp_path, "ours", OURS)
    upstream, _ = _pool_of(tmp_path, "upstream", UPSTREAM)
    comparison = upstream_schema.compare_files([ours], upstream)
    report = comparison.report()
    print(report)
    expected = [
        "p.M.b = 2: type 'int64' != upstream 'int32'",
        "p.M.c = 3: label 'repeated' != upstream 'singular'",
        "p.M.d = 4: oneof 'o' != upstream ''",
        "p.M.d = 4: presence True != upstream False",
        "p.M.n = 6: type_name 'p.M.N' != upstream 'p.Other'",
        "p.M.renamed = 7: name 'renamed' != upstream 'original'",
        "p.M.renamed = 7: json_name 'renamed' != upstream 'original'",
        "p.M.extra = 9: no such field number upstream",
        "p.M.f = 11: oneof '_f' != upstream ''",
        "p.M.f = 11: presence True != upstream False",
        "p.M.g = 12: json_name 'gee' != upstream 'g'",
        "p.M: upstream's missing = 8 is not declared here",
        "p.M: reserved ({10}, set()) != upstream ({10, 13}, set())",
        "message p.M.N: not declared upstream",
        "enum p.E: values {'E0': 0, 'E1': 1} != upstream {'E0': 0, 'E1': 2}",
    ]
    for line in expected:
        assert line in comparison.mismatches, f"not reported: {line}\n{report}"
    assert len(comparison.mismatches) == len(expected), report


def test_the_upstream_folder_is_a_checkout_or_laid_out_by_import_path(tmp_path, monkeypatch):
    checkout = tmp_path / "luci-go"
    (checkout / "buildbucket" / "proto").mkdir(parents=True)
    (checkout / "buildbucket" / "proto" / "build.proto").write_text("")
    monkeypatch.setenv(upstream_schema.ENV_VAR, str(checkout))
    folder, _ = upstream_schema.upstream_folder()
    assert folder.exists("go.chromium.org/luci/buildbucket/proto/build.proto")
    assert not folder.exists("go.chromium.org/luci/buildbucket/proto/task.proto")

    by_import_path = tmp_path / "protos"
    (by_import_path / "go.chromium.org" / "luci" / "resultdb").mkdir(parents=True)
    monkeypatch.setenv(upstream_schema.ENV_VAR, str(by_import_path))
    folder, _ = upstream_schema.upstream_folder()
    assert folder.include_args == (f"-I{by_import_path}",)

    monkeypatch.setenv(upstream_schema.ENV_VAR, str(tmp_path / "nothing"))
    folder, why = upstream_schema.upstream_folder()
    assert folder is None and "neither a luci-go checkout nor" in why
