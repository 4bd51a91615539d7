"""Calls to other services: TaskBackends, pRPC, identity and Pub/Sub publishing.

`prpc` is the generic pRPC client; `backend` fetches tasks over pRPC or gRPC
behind one seam (large answers asked for in halves); `backend_options` chooses
each backend's transport and identity; `identity` makes the credentials;
`publishing` publishes to a topic and waits until every message is accepted;
`cloud_tasks` creates Cloud Tasks by name (a name taken counts as created).

May import `store`, `rules` and the base modules.
"""
