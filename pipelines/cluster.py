"""What pipeline steps need on a Kubeflow cluster, applied in one place for every pipeline."""

from kfp import kubernetes

# The team's PodDefault (profiles/components/team/poddefault.yaml) injects MLflow, S3 and team settings
# into pods carrying this label; without it a step would not know its tracking server or team.
SETTINGS_LABEL = ("mlcycle-settings", "true")


def with_team_settings(*tasks):
    """Label each task's pod so the team's PodDefault applies to it."""
    for task in tasks:
        kubernetes.add_pod_label(task, *SETTINGS_LABEL)
    return tasks
