"""MLflow authentication: the tracking server with MLflow's basic-auth app, and one identity per team.

The servers enforce team isolation, not the client library: ``server`` prepares and starts
``mlflow server --app-name basic-auth`` (admin credentials, secret key, auth config), ``teams`` provisions
one MLflow user per team with MANAGE on exactly its own ``<team>.*`` experiments and registered models,
``credentials`` reads and writes the shell-sourceable ``.env`` files they land in, and ``secrets`` renders
(and, thinly, applies) the team's Kubernetes Secret.
"""
