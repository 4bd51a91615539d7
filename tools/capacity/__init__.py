"""The capacity planner: what a load of running builds asks of each limit of the deployment."""
