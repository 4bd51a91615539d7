"""Benchmark the sync: throughput against a Datastore floor, Datastore work per build, memory, cold start.

    python -m tools.bench [--sizes 1000,5000,20000] [--out bench-results]

It starts its own Datastore and Pub/Sub emulators, a TaskBackend that answers
at once, and (for the full pipeline) the three functions under
functions-framework, and stops all of them at the end, on an error and on
Ctrl-C. For each N it seeds N due builds over --projects projects and --shards
shards (seeding is not timed; the Datastore emulator is reset before each
seeding) and measures:

1. the in-process pipeline (buildsync.stages.pipeline.run_pipeline), every task with a
   newer update_id so that every build is written;
2. the full pipeline: a SyncTrigger published to the planner's topic, through
   Pub/Sub push into the planner, shard and sync functions, until the sync
   function's "synced batch" log events add up to N updated builds;
3. the tight and the contract floor (floor.py), each the best of 4, 8 and 16
   threads, on the same seeded builds just before the in-process run;
4. Datastore operations per build (datastore_calls.py) and FetchTasks calls
   per 1000 builds.

Each kind runs --repeats times per size, interleaved, and the median run is
reported: the emulators share two cores with whatever else the machine runs,
and the table shows how much CPU other processes took during each run (cpu.py).
--profile adds a cProfile of every thread of an extra in-process run of the
largest size (profiler.py).

Then two scenarios, each skippable: the production-latency profile
(latency.py: a delay proxy adds D = 0, 10, 30 ms to every Datastore RPC; one
1000-build batch's time against group workers, the pipeline's builds/s
against batches in flight) and the backlog (backlog.py: the sync stage held
back while triggers keep coming, then let go; FetchTasks and Datastore work
per build, time to converge, messages dropped as too old).

Once per run (singles.py): the peak memory of `sync_batch` on one 1000-build
batch in a fresh process (memory_probe.py), and each function's cold start.

Prints a table (table.py), writes OUTDIR/benchmark.csv (results.py, one row per
figure, judged by targets.py) and OUTDIR/sync_time.png (plot.py; needs
matplotlib: pip install -r requirements-bench.txt). `python -m tools.bench.cost`
turns the CSV into the monthly cost table (cost.py, prices in prices.py).
"""
