"""Datastore: the entities as Buildbucket stores them, and the transactions that change them.

`model` reads, decodes and saves Build entities (keeping every property and
field it does not own); `go_schema` lists every property Buildbucket's Go save
writes, with its zero value and index flag, and completes an entity to that
shape; `children` rewrites the child entities a status change
touches; `commit_budget` keeps a commit under Datastore's size limit;
`transactions` retries transient failures with a bound; `outbox` records which
completion effects of an ended build are still to do (and which Cloud Tasks,
by name); `configs` reads Buildbucket's Project and Builder config entities;
`dscache` locks Buildbucket's Redis cache keys around a commit, as dscache does.

May import `rules` and the base modules; never the network or the stages.
"""
