"""Serving registered models on a Kubeflow/KServe cluster.

- :mod:`~mlcycle.deploy.environments`: dev/staging/prod, the alias each serves, scaling, canary share;
- :mod:`~mlcycle.deploy.render`: the InferenceService for a model version (pure, webhook rules checked);
- :mod:`~mlcycle.deploy.kube`: create/patch through ``kubernetes.client.CustomObjectsApi`` (thin);
- :mod:`~mlcycle.deploy.canary` and :mod:`~mlcycle.deploy.prometheus`: canary analysis;
- :mod:`~mlcycle.deploy.serving_state`: ``mlcycle.serving.<env>.*`` tags on model versions;
- :mod:`~mlcycle.deploy.rollout`: the steps that tie them together (the pipeline's deploy step too).
"""
