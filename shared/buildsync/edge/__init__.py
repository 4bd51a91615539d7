"""The edge: where the outside world (Pub/Sub events, the command line, the environment) meets the stages.

`events` unwraps a CloudEvent and alone decides acknowledge or retry;
`handlers` are the three functions' work on a `runtime`; `runtime` builds the
clients and settings a deployed function keeps per process; `environment`
turns env.py's variables into the objects their owners define; `cli` is
`buildsync sync` and `buildsync status`.

May import every layer below.
"""
