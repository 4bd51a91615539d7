"""buildsync: keeps Buildbucket-style builds in sync with their backend tasks."""
