"""mlcycle: the machine-learning model lifecycle on Kubeflow Pipelines and KServe.

The library holds all logic; ``components/``, ``pipelines/``, ``inference/`` and the CLI are thin
layers over it and import it, never the other way round.
"""

__version__ = "0.1.0"
