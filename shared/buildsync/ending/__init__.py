"""What ending a build does after its commit, in the functions and the CLI alike.

`completion` runs an ended build's effects from its outbox entry;
`build_reader` reads the ended build back whole, as Buildbucket's API returns
it; `notification_format` makes Buildbucket's `BuildsV2PubSub` from it (pure),
and `proto_json` writes it as json_format would, at any depth Go decodes;
`notifications` publishes it; `compression` is zlib and zstd as Buildbucket
stores and sends them; `resultdb` finalizes the build's invocation; `handoff`
makes the Cloud Tasks Buildbucket's own sync would enqueue (buildbucket mode).
`builder_metrics` is the one part that runs inside the ending transaction: it
records the custom builder metrics the build matches on its Build entity.

May import `remote`, `store`, `rules` and the base modules.
"""
