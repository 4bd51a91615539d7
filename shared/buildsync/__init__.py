"""buildsync: keeps Buildbucket-style builds in sync with their backend tasks.

The package is six rooms, each importing only the rooms above it in this list
(tests/test_layers.py holds the rule); each room's `__init__` docstring is its
index:

- the base: `errors`, `logs`, `metrics`, `env`, `wire`, `nesting` and the
  generated `proto` modules, which import nothing of buildsync's but each other;
- `rules`: pure decisions (the sync-time key, task and status rules, settings);
- `store`: Datastore entities and transactions;
- `remote`: TaskBackends, pRPC, identity, publishing;
- `ending`: what ending a build does after its commit;
- `stages`: planner, shard, sync, and the pipeline that runs them;
- `edge`: Pub/Sub events, the functions' handlers, the runtime, the CLI.
"""
